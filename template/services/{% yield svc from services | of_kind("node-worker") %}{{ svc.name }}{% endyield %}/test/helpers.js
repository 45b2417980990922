// Shared fixtures for the integration tests: a throwaway database, random broker
// names, an events listener and worker processes whose JSON logs can be awaited.

import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import amqp from "amqplib";
import pg from "pg";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * The servers the integration tests need. Missing ones fail the run (a skipped
 * suite would look like a passing one).
 */
export function serverUrls() {
  const databaseUrl = process.env.DATABASE_URL;
  const rabbitmqUrl = process.env.RABBITMQ_URL;
  const missing = [!databaseUrl && "DATABASE_URL", !rabbitmqUrl && "RABBITMQ_URL"].filter(Boolean);
  if (!databaseUrl || !rabbitmqUrl) {
    throw new Error(
      `${missing.join(" and ")} not set: the integration tests need a real PostgreSQL ` +
        "(DATABASE_URL=postgresql://user:password@host:5432/postgres, a user who may create " +
        "databases and roles) and RabbitMQ (RABBITMQ_URL=amqp://user:password@host:5672/)",
    );
  }
  return { databaseUrl, rabbitmqUrl };
}

/**
 * The database whose schema the tests copy: the API's own migrations built it
 * (the worker has no schema of its own, so the tests never write one). Unset or
 * odd, the run fails rather than test against an invented schema.
 */
export function schemaDatabase() {
  const name = process.env.WORKER_TEST_SCHEMA_DB ?? "";
  if (!/^[a-z_][a-z0-9_]{0,53}$/.test(name)) {
    throw new Error(
      `WORKER_TEST_SCHEMA_DB ${name ? `is not a plain database name: ${JSON.stringify(name)}` : "not set"}: ` +
        "name a database on DATABASE_URL's server that the API's migrations built, with the role " +
        "<name>_exporter created before them (see the README, Development)",
    );
  }
  return name;
}

export const randomSuffix = () => randomBytes(4).toString("hex");

/**
 * Poll `check` until it returns something truthy.
 * @template T
 * @param {() => T | Promise<T>} check
 * @param {string} what For the timeout message.
 * @param {number} [timeoutMs]
 * @returns {Promise<NonNullable<T>>}
 */
export async function waitFor(check, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return /** @type {NonNullable<T>} */ (value);
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

// --------------------------------------------------------------------------- PostgreSQL

/**
 * A new database `worker_test_<random>`, a copy of the schema database (see
 * schemaDatabase), and a login role that is a member of `<schema>_exporter`: the
 * role the API's migration grants what workers may do (as in a project, where
 * each worker's role is a member of its database's exporter role). Both dropped
 * by drop(). `url` is the admin's (for the test's own set-up and checks),
 * `workerUrl` the limited role's (for the worker).
 * @param {string} adminUrl
 */
export async function createTestDatabase(adminUrl) {
  const schema = schemaDatabase();
  const name = `worker_test_${randomSuffix()}`;
  const role = `${name}_worker`;
  const password = randomBytes(12).toString("hex");
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const workerUrl = new URL(url);
  workerUrl.username = role;
  workerUrl.password = password;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
  pool.on("error", () => {}); // a test may terminate backends
  const drop = async () => {
    await pool.end();
    await withAdmin(adminUrl, async (admin) => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
    });
  };
  try {
    await withAdmin(adminUrl, async (admin) => {
      await admin.query(`CREATE DATABASE ${name} TEMPLATE ${schema}`);
      await admin
        .query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}' IN ROLE ${schema}_exporter`)
        .catch((/** @type {any} */ error) => {
          if (error?.code !== "42704") throw error; // undefined_object: no exporter role
          throw new Error(
            `role ${schema}_exporter does not exist: create it, then migrate ${schema}`,
          );
        });
    });
    await checkMigrated(pool, schema);
  } catch (error) {
    await drop(); // a set-up that failed leaves nothing behind
    throw error;
  }
  return { url: url.toString(), workerUrl: workerUrl.toString(), pool, drop };
}

/**
 * Fail at once, naming the cause, if the copy lacks the migrations or their grants
 * (the exporter role created after them): every test would fail less clearly.
 * @param {pg.Pool} pool
 * @param {string} schema
 */
async function checkMigrated(pool, schema) {
  const { rows } = await pool.query(
    `SELECT to_regclass('alembic_version') IS NOT NULL AS migrated,
            to_regclass('export_jobs') IS NOT NULL
              AND has_table_privilege($1, 'export_jobs', 'UPDATE') AS granted`,
    [`${schema}_exporter`],
  );
  if (!rows[0].migrated)
    throw new Error(`${schema} has no alembic_version: run the API's migrations on it first`);
  if (!rows[0].granted)
    throw new Error(`${schema}_exporter may not update export_jobs: create it before migrating`);
}

/**
 * @param {string} adminUrl
 * @param {(client: pg.Client) => Promise<unknown>} fn
 */
async function withAdmin(adminUrl, fn) {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await fn(admin);
  } finally {
    await admin.end();
  }
}

/**
 * Users that exercise the file formats: separators, quotes, line breaks, NULL,
 * non-ASCII, equal created_at (ordered by id then), and enough rows to span
 * several cursor batches.
 * @param {pg.Pool} pool
 * @returns {Promise<string>} The id of an admin, to own jobs.
 */
export async function insertUsers(pool) {
  const tricky = [
    ["admin@example.com", "Ada Admin", "admin", true],
    ["comma@example.com", "Doe, Jane", "user", true],
    ["quote@example.com", 'She said "hi"', "user", true],
    ["lines@example.com", "line one\nline two\r\nline three", "user", false],
    ["null@example.com", null, "user", true],
    ["unicode@example.com", "Zoë Ünïcødé 😀", "user", true],
  ];
  const { rows } = await pool.query(
    `INSERT INTO users (id, email, hashed_password, full_name, role, is_active, created_at)
     SELECT gen_random_uuid(), t.email, 'secret-hash', t.full_name, t.role, t.is_active,
            '2025-01-02 03:04:05.123456+00'::timestamptz + (t.n % 3) * interval '1 second'
       FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[])
            WITH ORDINALITY AS t(email, full_name, role, is_active, n)
     RETURNING id, role`,
    [
      tricky.map((u) => u[0]),
      tricky.map((u) => u[1]),
      tricky.map((u) => u[2]),
      tricky.map((u) => u[3]),
    ],
  );
  await pool.query(
    `INSERT INTO users (id, email, hashed_password, full_name, role, created_at)
     SELECT gen_random_uuid(), 'bulk' || n || '@example.com', 'secret-hash', 'Bulk ' || n,
            'user', now() - n * interval '1 minute'
       FROM generate_series(1, 1200) AS n`,
  );
  return rows.find((r) => r.role === "admin").id;
}

/**
 * @typedef {object} NewUser
 * @property {string} email
 * @property {string | null} [fullName]
 * @property {"admin" | "user"} [role]
 * @property {boolean} [isActive]
 */

/**
 * @param {pg.Pool} pool
 * @param {NewUser} user
 * @returns {Promise<string>} Its id.
 */
export async function insertUser(pool, { email, fullName = null, role = "user", isActive = true }) {
  const id = randomUUID();
  await pool.query(
    `INSERT INTO users (id, email, hashed_password, full_name, role, is_active)
     VALUES ($1, $2, 'secret-hash', $3, $4, $5)`,
    [id, email, fullName, role, isActive],
  );
  return id;
}

/**
 * @typedef {object} NewJob
 * @property {string} ownerId
 * @property {"csv" | "json"} [format]
 * @property {number} [attempts]
 * @property {string} [status]
 * @property {string | null} [finishedAt] ISO timestamp.
 * @property {string | null} [fileName]
 */

/**
 * @param {pg.Pool} pool
 * @param {NewJob} job
 * @returns {Promise<string>}
 */
export async function insertJob(
  pool,
  { ownerId, format = "csv", attempts = 0, status = "queued", finishedAt = null, fileName = null },
) {
  const id = randomUUID();
  await pool.query(
    `INSERT INTO export_jobs (id, owner_id, format, status, attempts, finished_at, file_name)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [id, ownerId, format, status, attempts, finishedAt, fileName],
  );
  return id;
}

/**
 * @param {pg.Pool} pool
 * @param {string} id
 */
export async function getJobRow(pool, id) {
  const { rows } = await pool.query(
    `SELECT id::text, owner_id::text, format, status, error, row_count, file_name,
            file_size::float8 AS file_size, attempts, started_at, finished_at,
            to_json(updated_at) #>> '{}' AS updated_at
       FROM export_jobs WHERE id = $1`,
    [id],
  );
  return rows[0];
}

/**
 * Hold `LOCK TABLE users` in an open transaction until release() (rolled back) or
 * commit(): the export's SELECT blocks behind it, which keeps a job "in hand" for
 * as long as a test needs. query() runs in that transaction.
 * @param {string} url
 */
export async function lockUsersTable(url) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query("BEGIN");
  await client.query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
  /** @param {"ROLLBACK" | "COMMIT"} end */
  const finish = async (end) => {
    await client.query(end);
    await client.end();
  };
  return {
    /** @param {string} sql @param {unknown[]} [params] */
    query: (sql, params) => client.query(sql, params),
    release: () => finish("ROLLBACK"),
    commit: () => finish("COMMIT"),
  };
}

/**
 * Backends of `applicationName` waiting for a lock (the blocked export).
 * @param {pg.Pool} pool
 * @param {string} applicationName
 * @returns {Promise<number[]>}
 */
export async function blockedBackends(pool, applicationName) {
  const { rows } = await pool.query(
    `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
    [applicationName],
  );
  return rows.map((r) => r.pid);
}

// --------------------------------------------------------------------------- RabbitMQ

/**
 * @typedef {object} Broker
 * @property {amqp.ChannelModel} connection
 * @property {amqp.ConfirmChannel} channel
 * @property {string} queue
 * @property {string} deadQueue
 * @property {string} exchange
 * @property {Array<{ routingKey: string, body: any }>} events Received on the exchange.
 * @property {(body: unknown, options?: { messageId?: string }) => Promise<void>} publishJob
 * @property {(content: Buffer) => Promise<void>} publishRaw
 * @property {() => Promise<amqp.GetMessage[]>} drainDeadLetters
 * @property {() => Promise<number>} readyCount
 * @property {() => Promise<number>} consumerCount Consumers of the job queue.
 * @property {() => Promise<void>} allEventsIn Wait until every event already published is in `events`.
 * @property {() => Promise<void>} close
 */

/**
 * Random queue and exchange names declared as the API declares them, and a
 * listener on `export.*` that records every event.
 * @param {string} url
 * @returns {Promise<Broker>}
 */
export async function openBroker(url) {
  const name = `test-${randomSuffix()}`;
  const queue = `${name}.exports`;
  const deadQueue = `${queue}.dead`;
  const exchange = `${name}.events`;
  const connection = await amqp.connect(url);
  const channel = await connection.createConfirmChannel();
  await channel.assertQueue(queue, { durable: true });
  await channel.assertQueue(deadQueue, { durable: true });
  await channel.assertExchange(exchange, "topic", { durable: true });
  const { queue: eventsQueue } = await channel.assertQueue("", { exclusive: true });
  await channel.bindQueue(eventsQueue, exchange, "export.*");
  /** @type {Broker["events"]} */
  const events = [];
  await channel.consume(
    eventsQueue,
    (message) => {
      if (message === null) return;
      events.push({
        routingKey: message.fields.routingKey,
        body: JSON.parse(String(message.content)),
      });
    },
    { noAck: true },
  );
  /**
   * @param {Buffer} content
   * @param {string} [messageId]
   */
  const send = async (content, messageId) => {
    channel.sendToQueue(queue, content, {
      persistent: true,
      contentType: "application/json",
      messageId,
    });
    await channel.waitForConfirms();
  };
  return {
    connection,
    channel,
    queue,
    deadQueue,
    exchange,
    events,
    publishJob: (body, { messageId } = {}) => send(Buffer.from(JSON.stringify(body)), messageId),
    publishRaw: (content) => send(content),
    async drainDeadLetters() {
      const messages = [];
      for (;;) {
        const message = await channel.get(deadQueue, { noAck: true });
        if (message === false) return messages;
        messages.push(message);
      }
    },
    async readyCount() {
      return (await channel.checkQueue(queue)).messageCount;
    },
    async consumerCount() {
      return (await channel.checkQueue(queue)).consumerCount;
    },
    // A marker sent through the exchange after the events (the workers' publishes are
    // confirmed, so already queued): once it arrives, so has everything before it.
    async allEventsIn() {
      const marker = `marker-${randomSuffix()}`;
      channel.publish(exchange, "export.marker", Buffer.from(JSON.stringify({ marker })));
      await channel.waitForConfirms();
      await waitFor(() => events.some((e) => e.body.marker === marker), "the events marker");
    },
    async close() {
      await channel.deleteQueue(queue).catch(() => {});
      await channel.deleteQueue(deadQueue).catch(() => {});
      await channel.deleteExchange(exchange).catch(() => {});
      await connection.close().catch(() => {});
    },
  };
}

/**
 * The message the API sends for a job.
 * @param {string} jobId
 * @param {string} ownerId
 * @param {"csv" | "json"} format
 */
export function jobMessage(jobId, ownerId, format) {
  return { job_id: jobId, owner_id: ownerId, format, requested_at: new Date().toISOString() };
}

// --------------------------------------------------------------------------- worker processes

/**
 * @typedef {object} WorkerProcess
 * @property {import("node:child_process").ChildProcess} child
 * @property {Array<Record<string, any>>} logs Parsed stdout lines.
 * @property {() => string} stderr
 * @property {Promise<{ code: number | null, signal: NodeJS.Signals | null }>} exited
 * @property {(predicate: (line: Record<string, any>) => boolean, what: string, timeoutMs?: number) => Promise<Record<string, any>>} waitForLog
 */

/**
 * Start `node src/index.js` with exactly `env` (plus PATH).
 * @param {Record<string, string>} env
 * @returns {WorkerProcess}
 */
export function spawnWorker(env) {
  const child = spawn(process.execPath, ["src/index.js"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  /** @type {Array<Record<string, any>>} */
  const logs = [];
  let pending = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (/** @type {string} */ chunk) => {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      if (process.env.WORKER_TEST_ECHO) process.stderr.write(`${line}\n`);
      logs.push(JSON.parse(line));
    }
  });
  child.stderr?.setEncoding("utf8").on("data", (/** @type {string} */ chunk) => {
    stderr += chunk;
  });
  const exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
  });
  return {
    child,
    logs,
    stderr: () => stderr,
    exited: /** @type {WorkerProcess["exited"]} */ (exited),
    waitForLog: (predicate, what, timeoutMs) =>
      waitFor(
        () => {
          if (child.exitCode !== null) {
            throw new Error(`worker exited (${child.exitCode}) before ${what}: ${stderr}`);
          }
          return logs.find(predicate);
        },
        what,
        timeoutMs,
      ),
  };
}

/**
 * A folder for export files, removed by the returned function.
 */
export async function exportsFolder() {
  const dir = await mkdtemp(path.join(os.tmpdir(), "worker-exports-"));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
