/** What `f` throws, checked to be a `type`; fails the test when `f` returns, or throws anything else. */
import { expect } from 'vitest';

export function thrown<E extends Error>(f: () => unknown, type: new (...args: never[]) => E): E {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(type);
    return err as E;
  }
  throw new Error(`expected a ${type.name}`);
}
