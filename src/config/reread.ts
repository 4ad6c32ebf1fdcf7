/**
 * Re-reading the config file for a reload (SIGHUP): validated exactly as at start; a file
 * that cannot be read or is invalid is logged at `error` with the messages `--check`
 * prints, and the running config stays.
 */
import type { Logger } from '../log.js';
import { ConfigError } from './errors.js';
import { loadConfig } from './load.js';
import type { ProxyConfig } from './types.js';

/**
 * @returns the new config, or `{ rejected }`: why it cannot be used (its problems joined
 *   with `; `), already logged
 */
export function rereadConfig(configPath: string, logger: Logger): ProxyConfig | { rejected: string } {
  try {
    return loadConfig(configPath);
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems : [String(err)];
    logger.error({ config: configPath, problems }, `reload rejected, the running config stays: ${problems.join('; ')}`);
    return { rejected: problems.join('; ') };
  }
}
