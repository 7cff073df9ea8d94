// The only module with side effects: read the configuration, start the sidecar, and stop
// it cleanly on SIGTERM / SIGINT.
import { pino } from 'pino';
import { ConfigErrors } from './core/errors.js';
import { helpText, loadConfig, type Config } from './core/config.js';
import { capYoungGeneration, holdYoungGeneration, youngGenCapFor } from './young-gen.js';

// A young generation that does not grow while the program loads, then grows to a cap sized
// from the cache budget and no further: see young-gen.ts.
holdYoungGeneration();

export async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText());
    return 0;
  }
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigErrors) {
      for (const e of err.errors) process.stderr.write(`sidecache: ${e.message}\n`);
      process.stderr.write('sidecache: not started; see sidecache --help\n');
      return 2;
    }
    throw err;
  }
  const logger = pino({ level: config.logLevel, base: { node: config.nodeId } });
  // Loaded after the configuration is checked: a refusal answers at once.
  const { Sidecar } = await import('./sidecar.js');
  const sidecar = new Sidecar(config, logger);
  try {
    await sidecar.start();
  } catch (err) {
    logger.fatal({ err }, 'start-up failed');
    process.stderr.write(`sidecache: start-up failed: ${(err as Error).message}\n`);
    await sidecar.stop().catch(() => {});
    return 1;
  }
  capYoungGeneration(youngGenCapFor(config.maxBytes));
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'draining');
      sidecar.stop().then(
        () => { logger.info('stopped'); resolve(); },
        (err: unknown) => { logger.error({ err }, 'stop failed'); resolve(); },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

// A crash of a background task must not take the sidecar down silently; log it loudly.
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`sidecache: unhandled rejection: ${String((reason as Error)?.stack ?? reason)}\n`);
});

main(process.argv.slice(2)).then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`sidecache: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
