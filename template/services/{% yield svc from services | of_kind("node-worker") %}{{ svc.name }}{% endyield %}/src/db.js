// PostgreSQL: the connection pool, which errors are worth retrying, the export_jobs
// state changes and the streamed read of what an export holds.
//
// The API owns the schema (Alembic). The worker needs exactly: SELECT on users (not
// hashed_password), SELECT, UPDATE and DELETE on export_jobs (DELETE for the retention
// sweep): what the API's migration grants its exporter role.

import pg from "pg";
import Cursor from "pg-cursor";

import { errorCode } from "./log.js";

/**
 * A row of export_jobs as the worker sees it (the event body is built from it).
 * @typedef {object} Job
 * @property {string} id
 * @property {string} owner_id
 * @property {"csv" | "json"} format
 * @property {"queued" | "running" | "done" | "failed"} status
 * @property {string | null} error
 * @property {number | null} row_count
 * @property {string | null} file_name
 * @property {number | null} file_size
 * @property {number} attempts
 * @property {string} updated_at ISO 8601 with offset and microseconds.
 */

/**
 * What a finished export file holds.
 * @typedef {object} ExportResult
 * @property {string} fileName Relative to EXPORTS_DIR.
 * @property {number} rowCount
 * @property {number} fileSize In bytes.
 */

/**
 * One user of the export, in the order and with the types the files get.
 * @typedef {object} UserRow
 * @property {string} id
 * @property {string} email
 * @property {string | null} full_name
 * @property {string} role
 * @property {boolean} is_active
 * @property {string} created_at ISO 8601 with offset and microseconds.
 */

/**
 * What one export may hold: "all" (an active admin's job) is every user; "self"
 * (anyone else's) is the owner's profile and the owner's export jobs.
 * @typedef {"all" | "self"} Scope
 */

/**
 * One record of an export: a UserRow in the "all" scope; in the "self" scope a
 * `record: "profile"` (the UserRow columns) or `record: "export_job"` row.
 * @typedef {Record<string, unknown>} ExportRecord
 */

/**
 * A batch of records, with the scope of the export they belong to (the same in
 * every batch of one export; the writer picks the file's columns from the first).
 * @typedef {object} ExportBatch
 * @property {Scope} scope
 * @property {ExportRecord[]} rows
 */

/** The job's owner is no longer in `users`: there is nobody to export for. Permanent. */
export class OwnerMissing extends Error {
  /** @override */
  name = "OwnerMissing";
}

/**
 * @param {Pick<import("./config.js").Config, "databaseUrl" | "serviceName" | "prefetch">} config
 * @param {import("./log.js").Logger} log
 */
export function createPool(config, log) {
  const pool = new pg.Pool({
    connectionString: config.databaseUrl,
    // Lets operators (and the tests) find our sessions in pg_stat_activity.
    application_name: config.serviceName,
    // to_json(timestamptz) renders in the session's time zone: make it UTC everywhere.
    options: "-c TimeZone=UTC",
    // One connection per concurrent job (the cursor) plus room for the short updates.
    max: config.prefetch + 2,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
  });
  // An idle client whose server went away emits here; without a listener the
  // process would crash. The next checkout simply opens a new connection.
  pool.on("error", (error) => log.warning("idle database connection lost", { error }));
  return pool;
}

// SQLSTATEs that describe the moment, not the statement: admin/crash shutdown,
// cannot connect now, serialization failure, deadlock, lock not available, too
// many connections. Class 08 (connection exceptions) is matched by prefix.
const TRANSIENT_SQLSTATES = new Set([
  "57P01",
  "57P02",
  "57P03",
  "40001",
  "40P01",
  "55P03",
  "53300",
]);
const TRANSIENT_SOCKET_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  // A stopped container's name has no DNS entry until it starts again (a restart
  // of the database container): a name that does not resolve is the moment too.
  "ENOTFOUND",
]);
// node-postgres reports a vanished server with plain Errors that carry no code.
const TRANSIENT_MESSAGES =
  /connection terminated|timeout exceeded when trying to connect|connection error and is not queryable/i;

/**
 * @param {unknown} error
 * @returns {boolean}
 */
export function isTransient(error) {
  if (!(error instanceof Error)) return false;
  const code = errorCode(error);
  if (typeof code === "string") {
    if (code.startsWith("08") || TRANSIENT_SQLSTATES.has(code)) return true;
    if (TRANSIENT_SOCKET_CODES.has(code)) return true;
  }
  return TRANSIENT_MESSAGES.test(error.message);
}

// bigint arrives as a string in node-postgres; export files stay far below 2^53 bytes.
// to_json() keeps the microseconds the API uses for SSE event ids (a JS Date would not).
const JOB_COLUMNS = `id::text AS id, owner_id::text AS owner_id, format, status, error,
  row_count, file_name, file_size::float8 AS file_size, attempts,
  to_json(updated_at) #>> '{}' AS updated_at`;

// Every state change must move updated_at forward, even within one clock tick:
// browsers resume their event stream from the last updated_at they saw.
const BUMP_UPDATED_AT = `updated_at = greatest(clock_timestamp(), updated_at + interval '1 microsecond')`;

/**
 * Take the job for one more attempt: only a queued or running job (a redelivery
 * after a crash) with attempts left. null: not claimable, see getJob for why.
 * @param {pg.Pool} pool
 * @param {string} jobId
 * @param {number} maxAttempts
 * @returns {Promise<Job | null>}
 */
export async function claimJob(pool, jobId, maxAttempts) {
  const { rows } = await pool.query(
    `UPDATE export_jobs
        SET status = 'running', attempts = attempts + 1, started_at = coalesce(started_at, now()),
            error = NULL, ${BUMP_UPDATED_AT}
      WHERE id = $1 AND status IN ('queued', 'running') AND attempts < $2
      RETURNING ${JOB_COLUMNS}`,
    [jobId, maxAttempts],
  );
  return rows[0] ?? null;
}

/**
 * @param {pg.Pool} pool
 * @param {string} jobId
 * @returns {Promise<Job | null>}
 */
export async function getJob(pool, jobId) {
  const { rows } = await pool.query(`SELECT ${JOB_COLUMNS} FROM export_jobs WHERE id = $1`, [
    jobId,
  ]);
  return rows[0] ?? null;
}

/**
 * Fail a job that used up its attempts (it never got to run this time).
 * @param {pg.Pool} pool
 * @param {string} jobId
 * @returns {Promise<Job | null>} null if it had finished meanwhile.
 */
export async function giveUpJob(pool, jobId) {
  const { rows } = await pool.query(
    `UPDATE export_jobs
        SET status = 'failed', error = 'gave up after ' || attempts || ' attempts',
            finished_at = now(), ${BUMP_UPDATED_AT}
      WHERE id = $1 AND status IN ('queued', 'running')
      RETURNING ${JOB_COLUMNS}`,
    [jobId],
  );
  return rows[0] ?? null;
}

/**
 * Record a permanent failure of this attempt. Fenced by the attempt number: an
 * attempt that a newer delivery has overtaken changes nothing.
 * @param {pg.Pool} pool
 * @param {Job} job The row as claimed.
 * @param {string} reason
 * @returns {Promise<Job | null>} null if superseded.
 */
export async function failJob(pool, job, reason) {
  const { rows } = await pool.query(
    `UPDATE export_jobs
        SET status = 'failed', error = $3, finished_at = now(), ${BUMP_UPDATED_AT}
      WHERE id = $1 AND status = 'running' AND attempts = $2
      RETURNING ${JOB_COLUMNS}`,
    [job.id, job.attempts, reason],
  );
  return rows[0] ?? null;
}

/**
 * Publish the file and mark the job done, atomically with respect to other attempts:
 * the UPDATE locks the row and matches only while it is still this attempt's, and
 * `publishFile` (the rename) runs after it, before the commit, so two overlapping
 * attempts can never leave a file that disagrees with the row. If the commit fails
 * after the rename, a later attempt overwrites the file.
 * @param {pg.Pool} pool
 * @param {Job} job The row as claimed.
 * @param {ExportResult} result
 * @param {() => Promise<void>} publishFile
 * @returns {Promise<Job | null>} null if superseded (the file was not published).
 */
export async function finishJob(pool, job, result, publishFile) {
  return withTransaction(pool, async (client) => {
    const { rows } = await client.query(
      `UPDATE export_jobs
          SET status = 'done', row_count = $3, file_name = $4, file_size = $5, error = NULL,
              finished_at = now(), ${BUMP_UPDATED_AT}
        WHERE id = $1 AND status = 'running' AND attempts = $2
        RETURNING ${JOB_COLUMNS}`,
      [job.id, job.attempts, result.rowCount, result.fileName, result.fileSize],
    );
    if (rows.length === 0) return null;
    await publishFile();
    return rows[0];
  });
}

/**
 * Delete the finished (done or failed) jobs that finished more than `days` before
 * `now`. Each row is deleted, and returned, by one caller only, however many
 * workers sweep at once.
 * @param {pg.Pool} pool
 * @param {Date} now
 * @param {number} days
 * @returns {Promise<string[]>} The ids deleted.
 */
export async function deleteExpiredJobs(pool, now, days) {
  const { rows } = await pool.query(
    `DELETE FROM export_jobs
      WHERE status IN ('done', 'failed')
        AND finished_at < $1::timestamptz - make_interval(days => $2)
      RETURNING id::text AS id`,
    [now.toISOString(), days],
  );
  return rows.map((row) => row.id);
}

/**
 * The status of each of these jobs that still has a row.
 * @param {pg.Pool} pool
 * @param {string[]} ids
 * @returns {Promise<Map<string, Job["status"]>>}
 */
export async function jobStatuses(pool, ids) {
  if (ids.length === 0) return new Map();
  const { rows } = await pool.query(
    "SELECT id::text AS id, status FROM export_jobs WHERE id = ANY($1::uuid[])",
    [ids],
  );
  return new Map(rows.map((row) => [row.id, row.status]));
}

/**
 * @template T
 * @param {pg.Pool} pool
 * @param {(client: pg.PoolClient) => Promise<T | null>} fn Returning null rolls back.
 * @returns {Promise<T | null>}
 */
async function withTransaction(pool, fn) {
  const { client, release } = await checkout(pool);
  try {
    await client.query("BEGIN");
    const value = await fn(client);
    await client.query(value === null ? "ROLLBACK" : "COMMIT");
    release(false);
    return value;
  } catch (error) {
    // The connection may be broken or mid-transaction: never hand it out again.
    release(true);
    throw error;
  }
}

/**
 * pool.connect() plus an 'error' listener for as long as we hold the client: a
 * connection that dies while checked out emits 'error' besides failing the query,
 * and an 'error' event nobody listens to would crash the process.
 * @param {pg.Pool} pool
 */
async function checkout(pool) {
  const client = await pool.connect();
  const ignore = () => {}; // the failed query reports the error
  client.on("error", ignore);
  /** @param {boolean} destroy Close the connection instead of reusing it. */
  const release = (destroy) => {
    // A destroyed client may still emit late: leave it the listener.
    if (!destroy) client.removeListener("error", ignore);
    client.release(destroy);
  };
  return { client, release };
}

const USER_COLUMNS = `id::text AS id, email, full_name, role, is_active,
  to_json(created_at) #>> '{}' AS created_at`;

const USERS_QUERY = `SELECT ${USER_COLUMNS} FROM users ORDER BY created_at, id`;

// The owner's CURRENT row decides the scope: an admin who was demoted or
// deactivated after queueing the job gets their own data only.
const OWNER_QUERY = `SELECT ${USER_COLUMNS}, (role = 'admin' AND is_active) AS sees_all
  FROM users WHERE id = $1`;

const OWN_JOBS_QUERY = `SELECT 'export_job' AS record, id::text AS id, format, status, row_count,
  file_size::float8 AS file_size, error, to_json(created_at) #>> '{}' AS created_at,
  to_json(started_at) #>> '{}' AS started_at, to_json(finished_at) #>> '{}' AS finished_at
  FROM export_jobs WHERE owner_id = $1 ORDER BY created_at, id`;

/**
 * What the export of a job owned by `ownerId` holds, in batches. The scope comes
 * from the database alone (never from the message), and the scope decision and the
 * rows are read in one snapshot. The first batch (possibly empty) comes as soon as
 * the scope is known. Throws OwnerMissing if the owner is gone.
 * @param {pg.Pool} pool
 * @param {string} ownerId
 * @param {number} [batchSize]
 * @returns {AsyncGenerator<ExportBatch, void, void>}
 */
export async function* streamExport(pool, ownerId, batchSize = 500) {
  const { client, release } = await checkout(pool);
  let finished = false;
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const { rows } = await client.query(OWNER_QUERY, [ownerId]);
    if (rows.length === 0) throw new OwnerMissing("the job's owner no longer exists");
    const { sees_all: seesAll, ...profile } = rows[0];
    if (seesAll) {
      yield { scope: "all", rows: [] };
      for await (const batch of readCursor(client, USERS_QUERY, [], batchSize))
        yield { scope: "all", rows: batch };
    } else {
      yield { scope: "self", rows: [{ record: "profile", ...profile }] };
      for await (const batch of readCursor(client, OWN_JOBS_QUERY, [ownerId], batchSize))
        yield { scope: "self", rows: batch };
    }
    await client.query("COMMIT");
    finished = true;
  } finally {
    // Failed or abandoned midway: closing the cursor or rolling back would wait for
    // a server that may be gone, so drop the connection instead.
    release(!finished);
  }
}

/**
 * A query's rows in batches, through a server-side cursor so that memory use does
 * not grow with the table.
 * @param {pg.PoolClient} client
 * @param {string} sql
 * @param {unknown[]} params
 * @param {number} batchSize
 * @returns {AsyncGenerator<ExportRecord[], void, void>}
 */
async function* readCursor(client, sql, params, batchSize) {
  /** @type {Cursor<ExportRecord>} */
  const cursor = client.query(new Cursor(sql, params));
  for (;;) {
    const rows = await cursor.read(batchSize);
    if (rows.length === 0) break;
    yield rows;
  }
  await cursor.close();
}
