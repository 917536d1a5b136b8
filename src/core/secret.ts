import { inspect } from 'node:util';

const REDACTED = '[redacted]';

/**
 * A secret string that never prints itself: JSON, string conversion and util.inspect all give
 * "[redacted]", so a config object can be logged whole without leaking a key. `reveal()` is the one way in.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return REDACTED;
  }
}

/** Shortest encryption secret accepted (characters); below SUGGESTED_SECRET_LENGTH a warning is logged. */
export const MIN_SECRET_LENGTH = 32;
export const SUGGESTED_SECRET_LENGTH = 64;

/** True for spellings of `off` other than exactly `off`: OFF, Off, " off ", "off\n", quoted 'off'… */
function nearMissOff(value: string): boolean {
  return value !== 'off' && value.replace(/[\s'"`]/g, '').toLowerCase() === 'off';
}

/**
 * What is wrong with `value` as an encryption secret (current or previous key, after kms: decryption), or
 * undefined when it may be used. The answer states the rule and never quotes the value.
 */
export function secretProblem(value: string): string | undefined {
  if (nearMissOff(value)) return 'is a spelling of "off" other than exactly off (another case, spaces or quotes); write off, lowercase and alone, to turn encryption off, or give a real key';
  if (value !== value.trim()) return 'begins or ends with whitespace; keys are used exactly as written, so remove it';
  if ([...value].length < MIN_SECRET_LENGTH) return `is shorter than ${MIN_SECRET_LENGTH} characters, the minimum; use ${SUGGESTED_SECRET_LENGTH}+ random characters`;
  return undefined;
}

/** A warning for a secret that is accepted but shorter than suggested, or undefined. */
export function secretWarning(value: string): string | undefined {
  return [...value].length < SUGGESTED_SECRET_LENGTH ? `is shorter than the ${SUGGESTED_SECRET_LENGTH} random characters suggested` : undefined;
}
