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
