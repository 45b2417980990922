// The life of one export message: parse, claim the job, write the file, record the
// outcome, announce it, and only then settle the message.
//
//   malformed / unknown job ........ dead-letter, ack
//   job already done or failed ..... republish its state, ack (a redelivery)
//   attempts used up ............... mark failed, announce, dead-letter, ack
//   otherwise ...................... running -> export -> done | failed, announce, ack
//
// Every step is safe to repeat, because any step may be interrupted (a crash, a
// lost connection) and the message then comes back.

import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import * as db from "./db.js";
import { publishFile, removeStaleTemps, writeTempFile } from "./exporter.js";
import { describeError } from "./log.js";
import { withRetry } from "./retry.js";

/** @typedef {import("./broker.js").Delivery} Delivery */
/** @typedef {import("./db.js").Job} Job */
/** @typedef {import("./log.js").Logger} Logger */
/**
 * @typedef {object} JobMessage
 * @property {true} ok
 * @property {string} jobId Lower case.
 * @property {"csv" | "json"} format
 */
/**
 * @typedef {object} BadMessage
 * @property {false} ok
 * @property {string} reason Why it cannot be processed (the dead letter's x-death-reason).
 * @property {string} [jobId] When the message had a valid one.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const FORMATS = ["csv", "json"];
// A non-transient error before the outcome could be recorded (say, a missing
// table) would otherwise send the message round in a tight loop.
const REQUEUE_DELAY_MS = 2000;

/**
 * @param {Buffer} content
 * @returns {JobMessage | BadMessage}
 */
export function parseJobMessage(content) {
  let body;
  try {
    body = JSON.parse(content.toString("utf8"));
  } catch {
    return { ok: false, reason: "not valid JSON" };
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return { ok: false, reason: "not a JSON object" };
  }
  const { job_id: jobId, format } = body;
  if (typeof jobId !== "string" || !UUID.test(jobId)) {
    return { ok: false, reason: "job_id is missing or not a UUID" };
  }
  if (!FORMATS.includes(format)) {
    return {
      ok: false,
      reason: "format is missing or not csv or json",
      jobId: jobId.toLowerCase(),
    };
  }
  return { ok: true, jobId: jobId.toLowerCase(), format };
}

/**
 * The events-exchange body: exactly these keys, as the API publishes them too.
 * @param {Job} job
 */
export function jobEvent(job) {
  return {
    job_id: job.id,
    owner_id: job.owner_id,
    status: job.status,
    row_count: job.row_count,
    file_name: job.file_name,
    file_size: job.file_size,
    error: job.error,
    updated_at: job.updated_at,
  };
}

/**
 * @typedef {object} JobRunnerOptions
 * @property {import("pg").Pool} pool
 * @property {import("./broker.js").Broker} broker
 * @property {Pick<import("./config.js").Config, "exportsDir" | "maxAttempts">} config
 * @property {Logger} log
 */

export class JobRunner {
  #pool;
  #broker;
  #config;
  #log;
  /** @type {Set<Promise<void>>} */
  #running = new Set();
  /** @type {Map<string, Promise<void>>} the latest delivery of each job in hand */
  #byJob = new Map();

  /** @param {JobRunnerOptions} options */
  constructor({ pool, broker, config, log }) {
    this.#pool = pool;
    this.#broker = broker;
    this.#config = config;
    this.#log = log;
  }

  /** Messages being worked on. */
  get inHand() {
    return this.#running.size;
  }

  /**
   * Take a message; never throws. Deliveries of the same job (a redelivery after a
   * reconnect while we are still on it) wait for each other, so the second one sees
   * the first one's outcome instead of doing the work again.
   * @param {Delivery} delivery
   * @returns {Promise<void>}
   */
  handle(delivery) {
    const message = parseJobMessage(delivery.content);
    const key = message.jobId;
    const previous = key ? this.#byJob.get(key) : undefined;
    const run = (async () => {
      await previous;
      await this.#process(delivery, message);
    })();
    this.#running.add(run);
    if (key) this.#byJob.set(key, run);
    run.finally(() => {
      this.#running.delete(run);
      if (key && this.#byJob.get(key) === run) this.#byJob.delete(key);
    });
    return run;
  }

  /** Wait until every message in hand is settled (graceful shutdown). */
  async drain() {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  /**
   * @param {Delivery} delivery
   * @param {JobMessage | BadMessage} message
   */
  async #process(delivery, message) {
    const log = message.jobId ? this.#log.child({ job_id: message.jobId }) : this.#log;
    try {
      if (message.ok) {
        await this.#runJob(delivery, message, log);
      } else {
        log.warning("malformed message", {
          reason: message.reason,
          message_id: delivery.properties.messageId,
        });
        await this.#deadLetter(delivery, message.reason, 0, log);
      }
    } catch (error) {
      // No outcome was recorded: put the message back for a later delivery.
      // Deliveries that claimed the job count against MAX_ATTEMPTS; ones that could
      // not even reach the database come round again (after the retries' backoff).
      const transient = db.isTransient(error);
      log.error("could not settle the message, requeueing it", { error, transient });
      if (!transient) await sleep(REQUEUE_DELAY_MS);
      delivery.nack(true);
    }
  }

  /**
   * @param {Delivery} delivery
   * @param {JobMessage} message
   * @param {Logger} log
   */
  async #runJob(delivery, message, log) {
    const { maxAttempts } = this.#config;
    const job = await this.#retry(log, "claim the job", () =>
      db.claimJob(this.#pool, message.jobId, maxAttempts),
    );
    if (job === null) {
      await this.#settleUnclaimed(delivery, message.jobId, log);
      return;
    }
    if (job.format !== message.format) {
      log.warning("the message's format differs from the job's; using the job's", {
        message_format: message.format,
        format: job.format,
      });
    }
    log.info("job started", {
      attempt: job.attempts,
      format: job.format,
      redelivered: delivery.redelivered,
    });
    // Best effort ("done" or "failed" follows anyway), so the export need not wait for
    // its confirm: the publish is written now, and the channel keeps "running" ahead of
    // whatever this job announces next.
    const running = this.#announce(job, log);
    const outcome = await this.#export(job, log);
    await running;
    if (outcome === null) {
      await this.#dropOvertaken(delivery, job, log);
      return;
    }
    await this.#finish(delivery, outcome, log);
  }

  /**
   * Our attempt could record nothing: either a newer delivery of this job claimed it
   * meanwhile (another worker got the message back after our connection dropped),
   * and its outcome is the one that counts; or the row is gone (its owner was
   * deleted, which deletes their jobs). Either way the message is done with.
   * @param {Delivery} delivery
   * @param {Job} job
   * @param {Logger} log
   */
  async #dropOvertaken(delivery, job, log) {
    const current = await this.#retry(log, "look up the job", () => db.getJob(this.#pool, job.id));
    if (current === null) log.warning("the job was deleted meanwhile (with its owner?)");
    else log.warning("superseded by a newer attempt of this job", { attempt: job.attempts });
    delivery.ack();
  }

  /**
   * Export and record done; a permanent failure is recorded as failed. A transient
   * failure that outlasts the retries is thrown (the message is requeued).
   * @param {Job} job
   * @param {Logger} log
   * @returns {Promise<Job | null>} The final row, or null if superseded.
   */
  async #export(job, log) {
    try {
      return await this.#retry(log, "export", () => this.#produce(job, log));
    } catch (error) {
      if (db.isTransient(error)) throw error;
      log.error("export failed", { error });
      const reason = describeError(error).slice(0, 2000);
      return this.#retry(log, "record the failure", () => db.failJob(this.#pool, job, reason));
    }
  }

  /**
   * One try: write the temporary file, then publish it and mark the job done.
   * @param {Job} job
   * @param {Logger} log
   */
  async #produce(job, log) {
    const dir = this.#config.exportsDir;
    await mkdir(dir, { recursive: true });
    // Only an earlier attempt of this job can have left its temporary files, and
    // looking means reading the whole folder (every export of the retention period).
    if (job.attempts > 1) {
      const stale = await removeStaleTemps(dir, job.id);
      if (stale.length > 0)
        log.info("removed temporary files of an earlier attempt", { files: stale });
    }
    const fileName = `${job.id}.${job.format}`;
    const { tempPath, rowCount, fileSize } = await writeTempFile({
      dir,
      jobId: job.id,
      format: job.format,
      batches: db.streamExport(this.#pool, job.owner_id),
    });
    try {
      return await db.finishJob(this.#pool, job, { fileName, rowCount, fileSize }, () =>
        publishFile(tempPath, path.join(dir, fileName)),
      );
    } finally {
      await rm(tempPath, { force: true }); // already gone if it was published
    }
  }

  /**
   * The job could not be claimed: find out why and settle the message accordingly.
   * @param {Delivery} delivery
   * @param {string} jobId
   * @param {Logger} log
   */
  async #settleUnclaimed(delivery, jobId, log) {
    const job = await this.#retry(log, "look up the job", () => db.getJob(this.#pool, jobId));
    if (job === null) {
      log.warning("unknown job id");
      await this.#deadLetter(delivery, "unknown job id", 0, log);
    } else if (job.status === "done" || job.status === "failed") {
      // Redelivered after a crash between our commit and our ack: the work is done,
      // only the announcement may be missing.
      log.info("job already finished, announcing its state again", { status: job.status });
      await this.#finish(delivery, job, log);
    } else if (job.attempts >= this.#config.maxAttempts) {
      await this.#giveUp(delivery, job, log);
    } else {
      log.warning("job changed while being claimed, requeueing", { status: job.status });
      delivery.nack(true);
    }
  }

  /**
   * @param {Delivery} delivery
   * @param {Job} job
   * @param {Logger} log
   */
  async #giveUp(delivery, job, log) {
    const failed = await this.#retry(log, "give up the job", () =>
      db.giveUpJob(this.#pool, job.id),
    );
    if (failed === null) {
      delivery.nack(true); // finished meanwhile: the redelivery announces it
      return;
    }
    log.error("giving up on the job", { attempts: failed.attempts, max: this.#config.maxAttempts });
    if (!(await this.#announce(failed, log))) {
      delivery.nack(true); // the redelivery sees "failed" and announces it
      return;
    }
    await this.#deadLetter(delivery, failed.error ?? "gave up", failed.attempts, log);
  }

  /**
   * The final state is committed: announce it, then ack. Without a confirmed event
   * the message goes back, and its redelivery announces the state again.
   * @param {Delivery} delivery
   * @param {Job} job
   * @param {Logger} log
   */
  async #finish(delivery, job, log) {
    if (job.status === "done") {
      log.info("job done", { rows: job.row_count, file_name: job.file_name, bytes: job.file_size });
    } else {
      log.error("job failed", { error: job.error });
    }
    if (!(await this.#announce(job, log))) {
      delivery.nack(true);
      return;
    }
    if (!delivery.ack()) log.warning("could not ack: the channel is gone; expecting a redelivery");
  }

  /**
   * @param {Job} job
   * @param {Logger} log
   * @returns {Promise<boolean>} Whether the broker confirmed the event.
   */
  async #announce(job, log) {
    try {
      await this.#broker.publishEvent(`export.${job.status}`, jobEvent(job));
      log.debug("event published", { status: job.status, updated_at: job.updated_at });
      return true;
    } catch (error) {
      log.warning("could not publish the job event", { status: job.status, error });
      return false;
    }
  }

  /**
   * @param {Delivery} delivery
   * @param {string} reason
   * @param {number} attempts
   * @param {Logger} log
   */
  async #deadLetter(delivery, reason, attempts, log) {
    if (await delivery.deadLetter(reason, attempts)) {
      log.warning("message dead-lettered", { reason, queue: this.#broker.deadLetterQueue });
    } else {
      log.warning("could not dead-letter: the channel is gone; expecting a redelivery");
    }
  }

  /**
   * @template T
   * @param {Logger} log
   * @param {string} what
   * @param {() => Promise<T>} fn
   */
  #retry(log, what, fn) {
    return withRetry(fn, { isTransient: db.isTransient, log, what });
  }
}
