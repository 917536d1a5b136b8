/** The ConfigError that loading `env` throws; fails the test when it loads, or throws anything else. */
import { expect } from 'vitest';
import { loadConfig } from '../../src/core/config.ts';
import { ConfigError } from '../../src/core/errors.ts';

export function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}
