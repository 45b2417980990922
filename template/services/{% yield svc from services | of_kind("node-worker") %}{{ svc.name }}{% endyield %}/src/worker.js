// Wiring: the pool, the broker, the job runner and the health server, started and
// stopped in the right order. Kept apart from index.js (process concerns: config
// errors, signals, exit codes) so that tests can run a worker in-process.

import { mkdir } from "node:fs/promises";

import { Broker } from "./broker.js";
import { createPool } from "./db.js";
import { closeHealthServer, portOf, startHealthServer } from "./health.js";
import { JobRunner } from "./jobs.js";
import { startRetention } from "./retention.js";

/**
 * @typedef {object} Worker
 * @property {Broker} broker
 * @property {JobRunner} jobs
 * @property {number} healthPort The port actually bound (HEALTH_PORT may be 0).
 * @property {() => Promise<void>} stop Graceful: no new messages, finish the ones in hand.
 */

/**
 * @param {import("./config.js").Config} config
 * @param {import("./log.js").Logger} log
 * @returns {Promise<Worker>}
 */
export async function startWorker(config, log) {
  await prepareExportsDir(config.exportsDir, log);
  const pool = createPool(config, log);
  const broker = new Broker({
    url: config.rabbitmqUrl,
    serviceName: config.serviceName,
    queue: config.exportQueue,
    deadLetterQueue: config.deadLetterQueue,
    exchange: config.eventsExchange,
    prefetch: config.prefetch,
    log,
  });
  const jobs = new JobRunner({ pool, broker, config, log });
  broker.onDelivery = (delivery) => void jobs.handle(delivery);
  const health = await startHealthServer({
    port: config.healthPort,
    host: config.healthHost,
    isHealthy: () => broker.healthy,
  });
  const healthPort = portOf(health);
  log.info("health endpoint listening", { host: config.healthHost, port: healthPort });
  broker.start();
  const retention = startRetention({ pool, config, log });

  let stopping;
  const stop = async () => {
    await broker.stopConsuming();
    if (jobs.inHand > 0) log.info("finishing the jobs in hand", { jobs: jobs.inHand });
    await jobs.drain();
    await retention.stop();
    await broker.close();
    await pool.end();
    await closeHealthServer(health);
  };
  return {
    broker,
    jobs,
    healthPort,
    stop: () => (stopping ??= stop()),
  };
}

/**
 * Create EXPORTS_DIR up front. A failure is not fatal here (the volume may be
 * mounted later, or fixed): each job tries again and fails with the reason.
 * @param {string} dir
 * @param {import("./log.js").Logger} log
 */
async function prepareExportsDir(dir, log) {
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    log.error("cannot create the exports folder", { dir, error });
  }
}
