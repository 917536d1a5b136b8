/**
 * The secret-leak check: every form in which a secret could show up in a log line or an error message, a
 * capture of what a piece of code writes (stdout, stderr, console) and of what it throws (message, stack,
 * causes, inspected properties), and a search of all of it.
 */
import { inspect } from 'node:util';

export interface SecretForm {
  /** Which secret (a name the test gives it). */
  readonly secret: string;
  /** How it is written: "as is", "base64", "hex", … */
  readonly form: string;
  readonly text: string;
}

export interface Captured {
  /** Where the text came from, e.g. "stderr of bucket-storage status". */
  readonly source: string;
  readonly text: string;
}

export interface Leak {
  readonly secret: string;
  readonly form: string;
  readonly source: string;
  /** Up to 40 characters either side of the hit. */
  readonly context: string;
}

/** Shorter forms would match by chance; every secret the tests use is far longer. */
const MIN_FORM_LENGTH = 12;

/**
 * The base64 characters that depend only on `bytes` when they sit at byte offset k (0, 1, 2) of a longer
 * buffer: a secret inside a bigger base64 blob shows one of these three.
 */
function base64Windows(bytes: Buffer, alphabet: 'base64' | 'base64url'): string[] {
  const out: string[] = [];
  for (let k = 0; k < 3; k++) {
    const text = Buffer.concat([Buffer.alloc(k), bytes]).toString(alphabet).replace(/=+$/, '');
    const first = Math.ceil((8 * k) / 6);
    const end = Math.floor((8 * (k + bytes.length)) / 6);
    out.push(text.slice(first, end));
  }
  return out;
}

/** The forms of one secret: a UTF-8 string or raw key bytes. */
export function formsOf(secret: string, value: string | Buffer): SecretForm[] {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const forms: SecretForm[] = [];
  const add = (form: string, text: string) => {
    if (text.length >= MIN_FORM_LENGTH && !forms.some((f) => f.text === text)) forms.push({ secret, form, text });
  };
  if (typeof value === 'string') {
    add('as is', value);
    add('JSON-escaped', JSON.stringify(value).slice(1, -1));
    add('URL-encoded', encodeURIComponent(value));
  }
  for (const [i, w] of base64Windows(bytes, 'base64').entries()) add(`base64 (offset ${i})`, w);
  for (const [i, w] of base64Windows(bytes, 'base64url').entries()) add(`base64url (offset ${i})`, w);
  add('hex', bytes.toString('hex'));
  add('HEX', bytes.toString('hex').toUpperCase());
  return forms;
}

/** Every text an error carries: message, stack, its inspection (own properties, nested causes), its causes'. */
export function errorTexts(source: string, err: unknown): Captured[] {
  const out: Captured[] = [];
  const seen = new Set<unknown>();
  const visit = (e: unknown, where: string, depth: number) => {
    if (depth > 8 || seen.has(e)) return;
    seen.add(e);
    out.push({ source: where, text: inspect(e, { depth: 8, breakLength: Infinity }) });
    if (e instanceof Error) {
      // The inspection above holds the stack (and so the message); the message alone, as a logger prints it.
      out.push({ source: `${where} message`, text: `${e.name}: ${e.message}` });
      try {
        out.push({ source: `${where} JSON`, text: JSON.stringify(e) ?? '' });
      } catch {
        // circular: its inspection above has it all
      }
      if (e.cause !== undefined) visit(e.cause, `${where} → cause`, depth + 1);
      if (e instanceof AggregateError) e.errors.forEach((inner, i) => visit(inner, `${where} → errors[${i}]`, depth + 1));
    }
  };
  visit(err, source, 0);
  return out;
}

/**
 * Captures what is written to process.stdout, process.stderr and the console while `run` runs (the Powertools
 * logger writes through them), and what `run` throws. Never throws itself.
 */
export async function capture(source: string, run: () => Promise<unknown>): Promise<{ texts: Captured[]; error: unknown; written: string }> {
  let written = '';
  const take = (chunk: unknown) => {
    written += typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) || chunk instanceof Uint8Array ? Buffer.from(chunk).toString('utf8') : String(chunk);
  };
  const stdoutWrite = process.stdout.write;
  const stderrWrite = process.stderr.write;
  const consoleMethods = ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const;
  const saved = consoleMethods.map((m) => console[m]);
  const writer = (chunk: unknown, ...rest: unknown[]) => {
    take(chunk);
    const callback = rest.find((r) => typeof r === 'function');
    if (typeof callback === 'function') callback();
    return true;
  };
  process.stdout.write = writer as typeof process.stdout.write;
  process.stderr.write = writer as typeof process.stderr.write;
  for (const m of consoleMethods) console[m] = (...args: unknown[]) => take(`${args.map((a) => (typeof a === 'string' ? a : inspect(a, { depth: 8 }))).join(' ')}\n`);
  let error: unknown;
  try {
    await run();
  } catch (err) {
    error = err;
  } finally {
    process.stdout.write = stdoutWrite;
    process.stderr.write = stderrWrite;
    consoleMethods.forEach((m, i) => (console[m] = saved[i] ?? console[m]));
  }
  const texts: Captured[] = [{ source: `${source}: output`, text: written }];
  if (error !== undefined) texts.push(...errorTexts(`${source}: thrown`, error));
  return { texts, error, written };
}

/** Every occurrence of any form of any secret in the captured texts. */
export function findLeaks(texts: readonly Captured[], forms: readonly SecretForm[]): Leak[] {
  const leaks: Leak[] = [];
  for (const { source, text } of texts) {
    for (const f of forms) {
      const at = text.indexOf(f.text);
      if (at >= 0) leaks.push({ secret: f.secret, form: f.form, source, context: text.slice(Math.max(0, at - 40), at + f.text.length + 40) });
    }
  }
  return leaks;
}
