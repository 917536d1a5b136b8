/**
 * What the CLI shows a person: whether a stream is a terminal, byte counts in binary units, aligned tables,
 * and a progress line that rewrites itself (only on a terminal; nothing when output is piped).
 */
import type { CommandContext } from './command.ts';

export function isTerminal(stream: CommandContext['stderr']): boolean {
  return 'isTTY' in stream && stream.isTTY === true;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** `1536` → `1.5 KiB`; whole bytes below 1 KiB. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** Rows as aligned columns; columns listed in `right` are right-aligned (numbers). */
export function table(rows: readonly (readonly string[])[], right: ReadonlySet<number> = new Set()): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) => row.map((cell, i) => (right.has(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd())
    .join('\n');
}

/** A one-line progress display on `stream` when it is a terminal, at most 10 updates a second. */
export class ProgressLine {
  readonly #stream: CommandContext['stderr'];
  readonly #enabled: boolean;
  #last = 0;
  #shown = false;

  constructor(stream: CommandContext['stderr']) {
    this.#stream = stream;
    this.#enabled = isTerminal(stream);
  }

  update(text: string, force = false): void {
    if (!this.#enabled) return;
    const now = Date.now();
    if (!force && now - this.#last < 100) return;
    this.#last = now;
    this.#shown = true;
    this.#stream.write(`\r\x1b[2K${text}`);
  }

  /** Clears the line (the result is printed elsewhere). */
  done(): void {
    if (this.#shown) this.#stream.write('\r\x1b[2K');
    this.#shown = false;
  }
}
