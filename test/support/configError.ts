/** The ConfigError that loading `env` throws; fails the test when it loads, or throws anything else. */
import { loadConfig } from '../../src/core/config.ts';
import { ConfigError } from '../../src/core/errors.ts';
import { thrown } from './thrown.ts';

export const configError = (env: Record<string, string>): ConfigError => thrown(() => loadConfig(env), ConfigError);
