// Retention: export files hold personal data, so they are not kept for ever. A
// sweep, at start and then every EXPORT_RETENTION_SWEEP_SECONDS:
//
//   1. deletes the finished (done or failed) export_jobs rows whose finished_at is
//      more than EXPORT_RETENTION_DAYS old;
//   2. removes the files in EXPORTS_DIR that no job row accounts for any more: those
//      of the rows just deleted, of rows deleted with their owner (the API deleted
//      the user), or left by a sweep that stopped between the two steps. Temporary
//      files go too once their job has no row or has finished; never those of a
//      queued or running job (an export in progress), and never a file whose name
//      is not one the worker writes.
//
// Several replicas may sweep at once: DELETE ... RETURNING hands each expired row to
// one of them, and removing a file that another sweep removed first is no error.

import { readdir, rm } from "node:fs/promises";
import path from "node:path";

import * as db from "./db.js";
import { exportFileOf } from "./exporter.js";
import { errorCode } from "./log.js";

/**
 * @typedef {object} SweepOptions
 * @property {import("pg").Pool} pool
 * @property {string} dir EXPORTS_DIR
 * @property {number} retentionDays
 * @property {Date} [now] The clock (tests pass their own).
 */

/**
 * One sweep.
 * @param {SweepOptions} options
 * @returns {Promise<{ jobs: string[], files: string[] }>} The job ids deleted and
 *   the file names removed.
 */
export async function sweepExports({ pool, dir, retentionDays, now = new Date() }) {
  const jobs = await db.deleteExpiredJobs(pool, now, retentionDays);
  const files = await removeOrphanFiles(pool, dir);
  return { jobs, files };
}

/**
 * @param {import("pg").Pool} pool
 * @param {string} dir
 * @returns {Promise<string[]>} The names removed.
 */
async function removeOrphanFiles(pool, dir) {
  // Listed before the rows are looked up: a file that is in the listing was
  // published (or begun) while its row existed, so a missing row means deleted.
  const ours = (await listFolder(dir)).flatMap((name) => {
    const file = exportFileOf(name);
    return file ? [{ name, ...file }] : [];
  });
  const statuses = await db.jobStatuses(pool, [...new Set(ours.map((f) => f.jobId))]);
  const orphans = ours.filter(({ jobId, temporary }) => {
    const status = statuses.get(jobId);
    if (status === undefined) return true;
    return temporary && (status === "done" || status === "failed");
  });
  await Promise.all(orphans.map(({ name }) => rm(path.join(dir, name), { force: true })));
  return orphans.map(({ name }) => name);
}

/**
 * The folder's entries; none if it does not exist (yet).
 * @param {string} dir
 */
async function listFolder(dir) {
  try {
    return await readdir(dir);
  } catch (error) {
    if (errorCode(error) === "ENOENT") return [];
    throw error;
  }
}

/**
 * @typedef {object} RetentionOptions
 * @property {import("pg").Pool} pool
 * @property {Pick<import("./config.js").Config, "exportsDir" | "retentionDays" | "retentionSweepSeconds">} config
 * @property {import("./log.js").Logger} log
 */

/**
 * @typedef {object} Sweeper
 * @property {() => Promise<void>} stop
 */

/**
 * Sweep now and then every `retentionSweepSeconds`, one sweep at a time. A failed
 * sweep is logged and tried again at the next tick; it never stops the worker.
 * @param {RetentionOptions} options
 * @returns {Sweeper} stop() waits for a sweep in progress.
 */
export function startRetention({ pool, config, log }) {
  const sweep = async () => {
    try {
      const { jobs, files } = await sweepExports({
        pool,
        dir: config.exportsDir,
        retentionDays: config.retentionDays,
      });
      const fields = { jobs_deleted: jobs.length, files_removed: files.length };
      if (jobs.length + files.length > 0) log.info("retention sweep", fields);
      else log.debug("retention sweep", fields);
    } catch (error) {
      log.warning("retention sweep failed, trying again later", { error });
    }
  };
  /** @type {Promise<void> | null} */
  let running = null;
  const tick = () => {
    running ??= sweep().finally(() => {
      running = null;
    });
  };
  tick();
  const timer = setInterval(tick, config.retentionSweepSeconds * 1000);
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
