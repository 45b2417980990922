// The export worker's entry point: configuration, the worker, and the signals that
// stop it. SIGTERM/SIGINT stop taking messages, finish the jobs in hand and exit 0;
// a second signal exits at once (the unfinished messages go back to the queue).

import { ConfigError, loadConfig } from "./config.js";
import { createLogger } from "./log.js";
import { startWorker } from "./worker.js";

/** @type {import("./config.js").Config} */
let config;
try {
  config = loadConfig(process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`config error: ${error.message}\n`);
  process.exit(1);
}

const log = createLogger({ service: config.serviceName, level: config.logLevel });

process.on("unhandledRejection", (error) => {
  log.error("unhandled rejection, exiting", { error });
  process.exit(1);
});

/** @type {import("./worker.js").Worker} */
let worker;
try {
  worker = await startWorker(config, log);
} catch (error) {
  // E.g. HEALTH_PORT already taken. (Unreachable servers are retried, not fatal.)
  log.error("cannot start", { error });
  process.exit(1);
}
log.info("worker started", {
  queue: config.exportQueue,
  exchange: config.eventsExchange,
  exports_dir: config.exportsDir,
  prefetch: config.prefetch,
  max_attempts: config.maxAttempts,
  retention_days: config.retentionDays,
  retention_sweep_seconds: config.retentionSweepSeconds,
});

let signalled = false;
/** @param {NodeJS.Signals} signal */
async function shutdown(signal) {
  if (signalled) {
    log.warning("second signal, exiting now", { signal });
    process.exit(1);
  }
  signalled = true;
  log.info("shutting down", { signal });
  try {
    await worker.stop();
    log.info("stopped");
    process.exit(0);
  } catch (error) {
    log.error("unclean shutdown", { error });
    process.exit(1);
  }
}

for (const signal of /** @type {const} */ (["SIGTERM", "SIGINT"])) {
  process.on(signal, (received) => void shutdown(received));
}
