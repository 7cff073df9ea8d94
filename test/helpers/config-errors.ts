// The ConfigErrors loadConfig throws for an environment, as "VARIABLE: message" lines.
import { loadConfig } from '../../src/core/config.js';
import { ConfigErrors } from '../../src/core/errors.js';

export function errorsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigErrors) return err.errors.map((e) => e.message);
    throw err;
  }
  return [];
}
