// End-to-end tests against real PostgreSQL and RabbitMQ (DATABASE_URL, RABBITMQ_URL):
// the worker runs as a child process, exactly as in its container, except for the
// broker-reconnect test, which runs it in-process to cut its connection.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import pg from "pg";

import { loadConfig } from "../src/config.js";
import { OwnerMissing, streamExport } from "../src/db.js";
import { COLUMNS, JOB_COLUMNS, SELF_COLUMNS } from "../src/exporter.js";
import { createLogger } from "../src/log.js";
import { startWorker } from "../src/worker.js";
import {
  blockedBackends,
  createTestDatabase,
  exportsFolder,
  getJobRow,
  insertJob,
  insertUser,
  insertUsers,
  jobMessage,
  lockUsersTable,
  openBroker,
  randomSuffix,
  serverUrls,
  spawnWorker,
  waitFor,
} from "./helpers.js";

const { databaseUrl, rabbitmqUrl } = serverUrls();

const EVENT_KEYS = [
  "job_id",
  "owner_id",
  "status",
  "row_count",
  "file_name",
  "file_size",
  "error",
  "updated_at",
];
const ISO_WITH_OFFSET = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)$/;

/** @type {Awaited<ReturnType<typeof createTestDatabase>>} */
let db;
/** @type {string} */
let ownerId;

before(async () => {
  db = await createTestDatabase(databaseUrl);
  ownerId = await insertUsers(db.pool);
});

after(async () => {
  await db?.drop();
});

/**
 * Per test: fresh broker names, an exports folder and a way to start workers; all
 * cleaned up (workers killed) when the test ends, whatever happened.
 * @param {import("node:test").TestContext} t
 * @param {Record<string, string>} [env]
 */
async function setup(t, env = {}) {
  const broker = await openBroker(rabbitmqUrl);
  const folder = await exportsFolder();
  const serviceName = `worker-test-${randomSuffix()}`;
  /** @type {import("./helpers.js").WorkerProcess[]} */
  const workers = [];
  const workerEnv = {
    DATABASE_URL: db.workerUrl,
    RABBITMQ_URL: rabbitmqUrl,
    EXPORT_QUEUE: broker.queue,
    EVENTS_EXCHANGE: broker.exchange,
    EXPORTS_DIR: folder.dir,
    SERVICE_NAME: serviceName,
    HEALTH_PORT: "0",
    HEALTH_HOST: "127.0.0.1",
    LOG_LEVEL: "debug",
    ...env,
  };
  /** Start a worker and wait until it consumes. */
  const startWorkerProcess = async () => {
    const worker = spawnWorker(workerEnv);
    workers.push(worker);
    await worker.waitForLog((line) => line.msg === "consuming", "the worker to consume");
    return worker;
  };
  t.after(async () => {
    for (const worker of workers) {
      if (worker.child.exitCode === null && worker.child.signalCode === null) {
        worker.child.kill("SIGKILL");
        await worker.exited;
      }
    }
    await broker.close();
    await folder.remove();
  });
  /**
   * Create a job row and send its message, as the API does.
   * @param {"csv" | "json"} [format]
   * @param {string} [owner] The admin of insertUsers unless given.
   */
  const submitJob = async (format = "csv", owner = ownerId) => {
    const jobId = await insertJob(db.pool, { ownerId: owner, format });
    await broker.publishJob(jobMessage(jobId, owner, format), { messageId: jobId });
    return jobId;
  };
  /**
   * Send the message of an existing job (its row must exist before users is locked:
   * the foreign key check of the INSERT would wait for the lock too).
   * @param {string} jobId
   * @param {"csv" | "json"} [format]
   */
  const publish = (jobId, format = "csv") =>
    broker.publishJob(jobMessage(jobId, ownerId, format), { messageId: jobId });
  /**
   * @param {string} jobId
   * @param {string} status
   * @param {number} [count] Wait for this many such events.
   */
  const waitForEvent = (jobId, status, count = 1) =>
    waitFor(() => {
      const found = eventsOf(jobId).filter((e) => e.body.status === status);
      return found.length >= count ? found[count - 1] : undefined;
    }, `event ${status} #${count} of job ${jobId}`);
  /** @param {string} jobId */
  const eventsOf = (jobId) => broker.events.filter((e) => e.body.job_id === jobId);
  return {
    broker,
    dir: folder.dir,
    serviceName,
    startWorkerProcess,
    submitJob,
    publish,
    waitForEvent,
    eventsOf,
  };
}

/** @param {import("./helpers.js").WorkerProcess} worker */
async function stopWorker(worker) {
  worker.child.kill("SIGTERM");
  const { code } = await worker.exited;
  assert.equal(code, 0, `worker exit code; stderr: ${worker.stderr()}`);
}

/**
 * @param {string} a ISO timestamp
 * @param {string} b ISO timestamp
 */
async function isBefore(a, b) {
  const { rows } = await db.pool.query("SELECT $1::timestamptz < $2::timestamptz AS before", [
    a,
    b,
  ]);
  return rows[0].before;
}

/**
 * A user as a "self" export's profile record.
 * @param {string} userId
 */
async function profileRecord(userId) {
  const { rows } = await db.pool.query(
    `SELECT 'profile' AS record, id::text AS id, email, full_name, role, is_active,
            to_json(created_at) #>> '{}' AS created_at
       FROM users WHERE id = $1`,
    [userId],
  );
  return rows[0];
}

/**
 * A job, as it stands now, as a "self" export's export_job record.
 * @param {string} jobId
 */
async function jobRecord(jobId) {
  const { rows } = await db.pool.query(
    `SELECT 'export_job' AS record, id::text AS id, format, status, row_count,
            file_size::float8 AS file_size, error, to_json(created_at) #>> '{}' AS created_at,
            to_json(started_at) #>> '{}' AS started_at, to_json(finished_at) #>> '{}' AS finished_at
       FROM export_jobs WHERE id = $1`,
    [jobId],
  );
  return rows[0];
}

/**
 * A CSV file as objects keyed by its header, the way Python's csv.DictReader reads it.
 * @param {string} text
 */
function csvRecords(text) {
  const [header, ...records] = parseCsv(text);
  return {
    header,
    records: records.map((r) => Object.fromEntries(header.map((name, i) => [name, r[i]]))),
  };
}

/**
 * A record as its CSV line holds it: every column, as text, empty for null or absent.
 * @param {Record<string, unknown>} record
 * @param {readonly string[]} columns
 */
function asCsv(record, columns) {
  return Object.fromEntries(columns.map((c) => [c, csvText(record[c])]));
}

/**
 * A value as the CSV writer puts it (after the formula guard), once unquoted.
 * @param {unknown} value
 */
function csvText(value) {
  if (value === null || value === undefined) return "";
  const text = String(value);
  return /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
}

/** The e-mail addresses of everyone but `userId`. */
async function othersEmails(/** @type {string} */ userId) {
  const { rows } = await db.pool.query("SELECT email FROM users WHERE id <> $1", [userId]);
  return rows.map((r) => r.email);
}

/** The users table as the export must contain it. */
async function expectedUsers() {
  const { rows } = await db.pool.query(
    `SELECT id::text AS id, email, full_name, role, is_active,
            to_json(created_at) #>> '{}' AS created_at
       FROM users ORDER BY created_at, id`,
  );
  return rows;
}

/**
 * A strict RFC 4180 reader (CRLF line ends, quoted fields).
 * @param {string} text
 * @returns {string[][]}
 */
function parseCsv(text) {
  /** @type {string[][]} */
  const records = [];
  /** @type {string[]} */
  let record = [];
  let field = "";
  let i = 0;
  while (i < text.length) {
    if (text[i] === '"') {
      i += 1;
      for (;;) {
        const quote = text.indexOf('"', i);
        assert.ok(quote >= 0, "unterminated quoted field");
        field += text.slice(i, quote);
        i = quote + 1;
        if (text[i] !== '"') break;
        field += '"';
        i += 1;
      }
    } else {
      const end = text.slice(i).search(/,|\r\n/);
      assert.ok(end >= 0, "the last record must end with CRLF");
      field += text.slice(i, i + end);
      i += end;
    }
    if (text[i] === ",") {
      record.push(field);
      field = "";
      i += 1;
    } else {
      assert.equal(text.slice(i, i + 2), "\r\n", `CRLF expected at ${i}`);
      record.push(field);
      records.push(record);
      record = [];
      field = "";
      i += 2;
    }
  }
  return records;
}

describe("export jobs", () => {
  test("a job goes from message to file and done, announcing running then done", async (t) => {
    const s = await setup(t);
    const worker = await s.startWorkerProcess();
    const jobId = await s.submitJob("csv");
    const done = await s.waitForEvent(jobId, "done");

    const row = await getJobRow(db.pool, jobId);
    const { rows: count } = await db.pool.query("SELECT count(*)::int AS n FROM users");
    const file = path.join(s.dir, `${jobId}.csv`);
    assert.equal(row.status, "done");
    assert.equal(row.error, null);
    assert.equal(row.attempts, 1);
    assert.equal(row.row_count, count[0].n);
    assert.equal(row.file_name, `${jobId}.csv`);
    assert.equal(row.file_size, (await stat(file)).size);
    assert.ok(row.started_at && row.finished_at);

    const events = s.eventsOf(jobId);
    assert.deepEqual(
      events.map((e) => e.routingKey),
      ["export.running", "export.done"],
    );
    for (const event of events)
      assert.deepEqual(Object.keys(event.body).sort(), [...EVENT_KEYS].sort());
    assert.deepEqual(done.body, {
      job_id: jobId,
      owner_id: ownerId,
      status: "done",
      row_count: row.row_count,
      file_name: row.file_name,
      file_size: row.file_size,
      error: null,
      updated_at: row.updated_at,
    });
    const running = events[0].body;
    assert.deepEqual(
      { ...running, updated_at: null },
      {
        ...done.body,
        status: "running",
        row_count: null,
        file_name: null,
        file_size: null,
        updated_at: null,
      },
    );
    assert.match(running.updated_at, ISO_WITH_OFFSET);
    assert.match(done.body.updated_at, ISO_WITH_OFFSET);
    assert.ok(await isBefore(running.updated_at, done.body.updated_at), "updated_at moves forward");

    assert.equal(await s.broker.readyCount(), 0);
    assert.deepEqual(await s.broker.drainDeadLetters(), []);
    const jobLines = worker.logs.filter((line) => line.job_id === jobId);
    assert.ok(jobLines.some((line) => line.msg === "job done"));
    for (const line of jobLines)
      assert.deepEqual(Object.keys(line).slice(0, 4), ["time", "level", "service", "msg"]);
    await stopWorker(worker);
  });

  test("the CSV and JSON files hold exactly the users table", async (t) => {
    const s = await setup(t);
    const worker = await s.startWorkerProcess();
    const csvJob = await s.submitJob("csv");
    const jsonJob = await s.submitJob("json");
    await s.waitForEvent(csvJob, "done");
    await s.waitForEvent(jsonJob, "done");
    const expected = await expectedUsers();
    assert.ok(expected.length > 1000, "spans several cursor batches");

    const csv = await readFile(path.join(s.dir, `${csvJob}.csv`), "utf8");
    const [header, ...records] = parseCsv(csv);
    assert.deepEqual(header, COLUMNS);
    assert.deepEqual(
      records,
      expected.map((u) => [
        u.id,
        u.email,
        u.full_name ?? "",
        u.role,
        String(u.is_active),
        u.created_at,
      ]),
    );

    const json = await readFile(path.join(s.dir, `${jsonJob}.json`), "utf8");
    const parsed = JSON.parse(json);
    assert.deepEqual(parsed, expected);
    assert.deepEqual(Object.keys(parsed[0]), COLUMNS);
    for (const user of parsed) assert.match(user.created_at, ISO_WITH_OFFSET);
    assert.ok(!csv.includes("secret-hash") && !json.includes("secret-hash"), "no password hashes");

    assert.deepEqual((await readdir(s.dir)).sort(), [`${csvJob}.csv`, `${jsonJob}.json`].sort());
    await stopWorker(worker);
  });

  test("a redelivered finished job is announced again, not redone", async (t) => {
    const s = await setup(t);
    const worker = await s.startWorkerProcess();
    const jobId = await s.submitJob("json");
    const first = await s.waitForEvent(jobId, "done");
    const file = path.join(s.dir, `${jobId}.json`);
    const before = await stat(file);

    await s.broker.publishJob(jobMessage(jobId, ownerId, "json"), { messageId: jobId });
    const second = await s.waitForEvent(jobId, "done", 2);
    assert.deepEqual(second.body, first.body, "the same state, with the same updated_at");
    assert.equal((await getJobRow(db.pool, jobId)).attempts, 1);
    assert.equal((await stat(file)).mtimeMs, before.mtimeMs, "the file was not rewritten");
    assert.equal(s.eventsOf(jobId).filter((e) => e.body.status === "running").length, 1);
    await waitFor(async () => (await s.broker.readyCount()) === 0, "the queue to be empty");
    await stopWorker(worker);
  });

  test("poison messages are dead-lettered with the reason, and the worker carries on", async (t) => {
    const s = await setup(t);
    const worker = await s.startWorkerProcess();
    const unknownId = randomUUID();
    const poison = [
      { content: Buffer.from("this is {not json"), reason: "not valid JSON" },
      { content: Buffer.from("[1, 2]"), reason: "not a JSON object" },
      {
        content: Buffer.from(JSON.stringify({ job_id: "42", format: "csv" })),
        reason: "job_id is missing or not a UUID",
      },
      {
        content: Buffer.from(JSON.stringify({ job_id: randomUUID(), format: "xml" })),
        reason: "format is missing or not csv or json",
      },
      {
        content: Buffer.from(JSON.stringify(jobMessage(unknownId, ownerId, "csv"))),
        reason: "unknown job id",
      },
    ];
    for (const { content } of poison) await s.broker.publishRaw(content);
    const jobId = await s.submitJob("csv");
    await s.waitForEvent(jobId, "done");

    /** @type {import("amqplib").GetMessage[]} */
    const dead = [];
    await waitFor(async () => {
      dead.push(...(await s.broker.drainDeadLetters()));
      return dead.length >= poison.length;
    }, "the dead letters");
    const byContent = new Map(dead.map((m) => [m.content.toString(), m.properties.headers ?? {}]));
    for (const { content, reason } of poison) {
      const headers = byContent.get(content.toString());
      assert.ok(headers, `dead letter for ${content}`);
      assert.equal(headers["x-death-reason"], reason);
      assert.equal(headers["x-original-queue"], s.broker.queue);
      assert.equal(headers["x-attempts"], 0);
      assert.ok(!Number.isNaN(Date.parse(headers["x-failed-at"])));
    }
    assert.equal(dead.length, poison.length);
    assert.equal(await s.broker.readyCount(), 0);
    assert.ok(worker.logs.some((l) => l.job_id === unknownId && l.msg === "message dead-lettered"));
    await stopWorker(worker);
  });

  test("a permanent error fails the job with the reason", async (t) => {
    const folder = await exportsFolder();
    t.after(() => folder.remove());
    const notAFolder = path.join(folder.dir, "a-file");
    await writeFile(notAFolder, "");
    const s = await setup(t, { EXPORTS_DIR: notAFolder });
    const worker = await s.startWorkerProcess();
    const jobId = await s.submitJob("csv");
    const failed = await s.waitForEvent(jobId, "failed");

    const row = await getJobRow(db.pool, jobId);
    assert.equal(row.status, "failed");
    assert.equal(row.attempts, 1);
    assert.match(row.error, /EEXIST|ENOTDIR/);
    assert.ok(row.finished_at);
    assert.deepEqual(failed.body, { ...failed.body, error: row.error, updated_at: row.updated_at });
    assert.equal(await s.broker.readyCount(), 0);
    assert.deepEqual(await s.broker.drainDeadLetters(), []);
    await stopWorker(worker);
  });

  test("a job past MAX_ATTEMPTS is failed and dead-lettered", async (t) => {
    const s = await setup(t, { MAX_ATTEMPTS: "2" });
    const worker = await s.startWorkerProcess();
    // Two earlier deliveries claimed it and died.
    const jobId = await insertJob(db.pool, { ownerId, status: "running", attempts: 2 });
    await s.broker.publishJob(jobMessage(jobId, ownerId, "csv"), { messageId: jobId });
    const failed = await s.waitForEvent(jobId, "failed");

    const row = await getJobRow(db.pool, jobId);
    assert.equal(row.status, "failed");
    assert.equal(row.error, "gave up after 2 attempts");
    assert.equal(row.attempts, 2);
    assert.ok(row.finished_at);
    assert.equal(failed.body.error, "gave up after 2 attempts");
    assert.equal(failed.body.updated_at, row.updated_at);

    const dead = await waitFor(async () => (await s.broker.drainDeadLetters())[0], "a dead letter");
    assert.equal(dead.properties.messageId, jobId);
    assert.equal(dead.properties.headers?.["x-death-reason"], "gave up after 2 attempts");
    assert.equal(dead.properties.headers?.["x-attempts"], 2);
    assert.equal(await s.broker.readyCount(), 0);
    assert.deepEqual(await readdir(s.dir), []);
    await stopWorker(worker);
  });
});

describe("export scope", () => {
  test("a plain user's export holds their profile and their own jobs, nobody else's", async (t) => {
    const s = await setup(t);
    const worker = await s.startWorkerProcess();
    const plain = await insertUser(db.pool, {
      email: `plain-${randomSuffix()}@example.com`,
      fullName: "=Plain, User",
    });
    const earlier = await insertJob(db.pool, { ownerId: plain, format: "json", status: "failed" });
    const adminsJob = await insertJob(db.pool, { ownerId, status: "done" });
    const csvJob = await s.submitJob("csv", plain);
    await s.waitForEvent(csvJob, "done");
    const jsonJob = await s.submitJob("json", plain);
    await s.waitForEvent(jsonJob, "done");

    const csv = await readFile(path.join(s.dir, `${csvJob}.csv`), "utf8");
    const { header, records } = csvRecords(csv);
    assert.deepEqual(header, SELF_COLUMNS);
    assert.deepEqual(records[0], asCsv(await profileRecord(plain), SELF_COLUMNS));
    assert.equal(records[0].full_name, "'=Plain, User", "the formula guard applies here too");
    assert.deepEqual(
      records.slice(1).map((r) => [r.record, r.id, r.email]),
      [
        ["export_job", earlier, ""],
        ["export_job", csvJob, ""],
      ],
    );
    assert.equal(records[2].status, "running", "the job itself, as it was while exporting");
    assert.equal((await getJobRow(db.pool, csvJob)).row_count, records.length);

    const json = JSON.parse(await readFile(path.join(s.dir, `${jsonJob}.json`), "utf8"));
    assert.deepEqual(json[0], await profileRecord(plain));
    assert.deepEqual(json[1], await jobRecord(earlier));
    assert.deepEqual(json[2], await jobRecord(csvJob), "the finished job, exactly as it stands");
    assert.deepEqual(Object.keys(json[3]), ["record", ...JOB_COLUMNS]);
    assert.deepEqual([json[3].id, json[3].status, json[3].finished_at], [jsonJob, "running", null]);
    assert.equal(json.length, 4);

    const others = await othersEmails(plain);
    assert.ok(others.length > 1000);
    for (const text of [csv, JSON.stringify(json)]) {
      assert.ok(!others.some((email) => text.includes(email)), "no other user's e-mail");
      assert.ok(!text.includes(adminsJob), "no other user's job");
      assert.ok(!text.includes("secret-hash"), "no password hash");
    }
    await stopWorker(worker);
  });

  test("the message's owner_id and format change nothing: the job row decides", async (t) => {
    const s = await setup(t);
    const worker = await s.startWorkerProcess();
    const plain = await insertUser(db.pool, { email: `claims-${randomSuffix()}@example.com` });
    // A plain user's job whose message claims to be the admin's, in another format.
    const plainJob = await insertJob(db.pool, { ownerId: plain, format: "csv" });
    await s.broker.publishJob(jobMessage(plainJob, ownerId, "json"), { messageId: plainJob });
    await s.waitForEvent(plainJob, "done");
    // And the admin's job whose message claims to be the plain user's.
    const adminJob = await insertJob(db.pool, { ownerId, format: "json" });
    await s.broker.publishJob(jobMessage(adminJob, plain, "csv"), { messageId: adminJob });
    await s.waitForEvent(adminJob, "done");

    assert.deepEqual((await readdir(s.dir)).sort(), [`${plainJob}.csv`, `${adminJob}.json`].sort());
    const { header, records } = csvRecords(
      await readFile(path.join(s.dir, `${plainJob}.csv`), "utf8"),
    );
    assert.deepEqual(header, SELF_COLUMNS);
    assert.deepEqual(
      records.map((r) => r.email),
      [(await profileRecord(plain)).email, ""],
    );
    const all = JSON.parse(await readFile(path.join(s.dir, `${adminJob}.json`), "utf8"));
    assert.deepEqual(all, await expectedUsers());
    await stopWorker(worker);
  });

  test("an admin demoted or deactivated after queueing gets only their own data", async (t) => {
    const s = await setup(t);
    const worker = await s.startWorkerProcess();
    const demoted = await insertUser(db.pool, {
      email: `demoted-${randomSuffix()}@example.com`,
      role: "admin",
    });
    const deactivated = await insertUser(db.pool, {
      email: `deactivated-${randomSuffix()}@example.com`,
      role: "admin",
    });
    const demotedJob = await insertJob(db.pool, { ownerId: demoted, format: "json" });
    const deactivatedJob = await insertJob(db.pool, { ownerId: deactivated, format: "json" });
    await db.pool.query("UPDATE users SET role = 'user' WHERE id = $1", [demoted]);
    await db.pool.query("UPDATE users SET is_active = false WHERE id = $1", [deactivated]);
    for (const [jobId, owner] of [
      [demotedJob, demoted],
      [deactivatedJob, deactivated],
    ]) {
      await s.broker.publishJob(jobMessage(jobId, owner, "json"), { messageId: jobId });
      await s.waitForEvent(jobId, "done");
      const json = JSON.parse(await readFile(path.join(s.dir, `${jobId}.json`), "utf8"));
      assert.deepEqual(
        json.map((/** @type {any} */ r) => [r.record, r.id]),
        [
          ["profile", owner],
          ["export_job", jobId],
        ],
      );
      assert.deepEqual(json[0], await profileRecord(owner));
      assert.equal((await getJobRow(db.pool, jobId)).row_count, 2);
    }
    await stopWorker(worker);
  });

  test("an owner deleted mid-export: no file, no event after running, the message settled", async (t) => {
    const s = await setup(t);
    const worker = await s.startWorkerProcess();
    const doomed = await insertUser(db.pool, { email: `doomed-${randomSuffix()}@example.com` });
    const jobId = await insertJob(db.pool, { ownerId: doomed, format: "csv" });
    const lock = await lockUsersTable(db.url);
    t.after(() => lock.release().catch(() => {}));
    await s.broker.publishJob(jobMessage(jobId, doomed, "csv"), { messageId: jobId });
    await waitFor(
      () => blockedBackends(db.pool, s.serviceName).then((p) => p.length > 0),
      "the export to block",
    );
    await lock.query("DELETE FROM users WHERE id = $1", [doomed]); // its jobs go with it
    await lock.commit();

    await worker.waitForLog(
      (l) => l.job_id === jobId && l.msg === "the job was deleted meanwhile (with its owner?)",
      "the worker to drop the job",
    );
    assert.deepEqual(await readdir(s.dir), [], "neither a file nor a temporary one");
    assert.equal(await getJobRow(db.pool, jobId), undefined);
    assert.deepEqual(
      s.eventsOf(jobId).map((e) => e.body.status),
      ["running"],
    );
    await waitFor(async () => (await s.broker.readyCount()) === 0, "the queue to be empty");
    assert.deepEqual(await s.broker.drainDeadLetters(), []);
    await stopWorker(worker);
  });

  test("an export for an owner who is not in users fails with OwnerMissing", async (t) => {
    const pool = new pg.Pool({ connectionString: db.workerUrl, max: 1 });
    t.after(() => pool.end());
    await assert.rejects(async () => {
      for await (const batch of streamExport(pool, randomUUID())) assert.fail(String(batch));
    }, OwnerMissing);
    // The connection was dropped, not left mid-transaction for the next export.
    assert.equal(pool.totalCount, 0);
  });
});

describe("retention", () => {
  test("the worker sweeps at start and then every EXPORT_RETENTION_SWEEP_SECONDS", async (t) => {
    const s = await setup(t, { EXPORT_RETENTION_DAYS: "1", EXPORT_RETENTION_SWEEP_SECONDS: "1" });
    const old = await insertJob(db.pool, {
      ownerId,
      status: "done",
      finishedAt: new Date(Date.now() - 2 * 86_400_000).toISOString(),
    });
    const orphan = `${randomUUID()}.json`;
    await writeFile(path.join(s.dir, `${old}.csv`), "old");
    await writeFile(path.join(s.dir, orphan), "orphan");
    const worker = await s.startWorkerProcess();
    await waitFor(async () => (await readdir(s.dir)).length === 0, "the first sweep");
    assert.equal(await getJobRow(db.pool, old), undefined);
    const swept = await worker.waitForLog((l) => l.msg === "retention sweep", "its log line");
    assert.deepEqual([swept.jobs_deleted, swept.files_removed], [1, 2]);

    const fresh = await s.submitJob("csv");
    await s.waitForEvent(fresh, "done");
    const later = `${randomUUID()}.csv`; // e.g. its user was deleted since
    await writeFile(path.join(s.dir, later), "orphan");
    await waitFor(async () => !(await readdir(s.dir)).includes(later), "a later sweep");
    assert.deepEqual(await readdir(s.dir), [`${fresh}.csv`], "a recent export stays");
    await stopWorker(worker);
  });
});

describe("failures and shutdown", () => {
  test("a transient database error is retried in-process", async (t) => {
    const s = await setup(t);
    const worker = await s.startWorkerProcess();
    const jobId = await insertJob(db.pool, { ownerId, format: "csv" });
    const lock = await lockUsersTable(db.url);
    t.after(() => lock.release().catch(() => {}));
    await s.publish(jobId, "csv");
    const [pid] = await waitFor(async () => {
      const pids = await blockedBackends(db.pool, s.serviceName);
      return pids.length > 0 ? pids : null;
    }, "the export to block");
    await db.pool.query("SELECT pg_terminate_backend($1)", [pid]);
    await worker.waitForLog(
      (l) => l.job_id === jobId && l.msg === "transient error, retrying",
      "a retry",
    );
    await waitFor(
      () => blockedBackends(db.pool, s.serviceName).then((p) => p.length > 0),
      "the retry to block",
    );
    await lock.release();

    await s.waitForEvent(jobId, "done");
    const row = await getJobRow(db.pool, jobId);
    assert.equal(row.status, "done");
    assert.equal(row.attempts, 1, "a retry in-process is not a new delivery");
    const retry = worker.logs.find((l) => l.msg === "transient error, retrying");
    assert.equal(retry?.level, "warning");
    assert.match(retry?.error, /57P01|terminat/i);
    assert.deepEqual(await readdir(s.dir), [`${jobId}.csv`]);
    await stopWorker(worker);
  });

  test("SIGTERM finishes the job in hand, acks it and exits 0", async (t) => {
    const s = await setup(t);
    const worker = await s.startWorkerProcess();
    const jobId = await insertJob(db.pool, { ownerId, format: "json" });
    const laterJob = await insertJob(db.pool, { ownerId, format: "csv" });
    const lock = await lockUsersTable(db.url);
    t.after(() => lock.release().catch(() => {}));
    await s.publish(jobId, "json");
    await waitFor(
      () => blockedBackends(db.pool, s.serviceName).then((p) => p.length > 0),
      "the export to block",
    );

    worker.child.kill("SIGTERM");
    await worker.waitForLog((l) => l.msg === "consumer cancelled", "the consumer to be cancelled");
    await s.publish(laterJob); // must stay queued for the next worker
    // No consumer left on the queue: nothing can take the later job any more.
    await waitFor(async () => (await s.broker.consumerCount()) === 0, "no consumer on the queue");
    await lock.release();

    const { code } = await worker.exited;
    assert.equal(code, 0, worker.stderr());
    assert.equal((await getJobRow(db.pool, jobId)).status, "done");
    assert.ok(s.eventsOf(jobId).some((e) => e.body.status === "done"));
    const later = await getJobRow(db.pool, laterJob);
    assert.equal(later.status, "queued");
    assert.equal(later.attempts, 0);
    assert.equal(await s.broker.readyCount(), 1, "only the later job is left in the queue");
    assert.ok(worker.logs.some((l) => l.msg === "stopped"));
  });

  test("SIGKILL mid-job: the next worker finishes it exactly once", async (t) => {
    const s = await setup(t);
    const first = await s.startWorkerProcess();
    const jobId = await insertJob(db.pool, { ownerId, format: "csv" });
    const lock = await lockUsersTable(db.url);
    t.after(() => lock.release().catch(() => {}));
    await s.publish(jobId, "csv");
    await waitFor(
      () => blockedBackends(db.pool, s.serviceName).then((p) => p.length > 0),
      "the export to block",
    );
    const leftovers = (await readdir(s.dir)).filter((name) => name.endsWith(".tmp"));
    assert.equal(leftovers.length, 1, "the killed attempt's temporary file");

    first.child.kill("SIGKILL");
    await first.exited;
    await lock.release();
    const second = await s.startWorkerProcess();
    await s.waitForEvent(jobId, "done");
    // A duplicate could only come from the second worker: once it has stopped (every job
    // in hand acked) and its events are all in, the counts below are final.
    await stopWorker(second);
    await s.broker.allEventsIn();

    const row = await getJobRow(db.pool, jobId);
    assert.equal(row.status, "done");
    assert.equal(row.attempts, 2);
    assert.deepEqual(await readdir(s.dir), [`${jobId}.csv`], "one file, no temporary left");
    assert.equal(s.eventsOf(jobId).filter((e) => e.body.status === "done").length, 1);
    assert.equal(await s.broker.readyCount(), 0);
    assert.ok(
      second.logs.some(
        (l) => l.job_id === jobId && l.msg === "removed temporary files of an earlier attempt",
      ),
    );
  });

  test("health is 503 while the broker connection is down, 200 after reconnecting", async (t) => {
    const s = await setup(t);
    const config = loadConfig({
      DATABASE_URL: db.workerUrl,
      RABBITMQ_URL: rabbitmqUrl,
      EXPORT_QUEUE: s.broker.queue,
      EVENTS_EXCHANGE: s.broker.exchange,
      EXPORTS_DIR: s.dir,
      SERVICE_NAME: s.serviceName,
      HEALTH_PORT: "0",
      HEALTH_HOST: "127.0.0.1",
    });
    /** @type {Record<string, any>[]} */
    const logs = [];
    const log = createLogger({
      service: "test",
      level: "debug",
      write: (l) => logs.push(JSON.parse(l)),
    });
    const worker = await startWorker(config, log);
    t.after(() => worker.stop());
    const url = `http://127.0.0.1:${worker.healthPort}/health`;
    await once(worker.broker, "connected");
    const healthy = await fetch(url);
    assert.equal(healthy.status, 200);
    assert.deepEqual(await healthy.json(), { status: "ok" });

    const disconnected = once(worker.broker, "disconnected");
    const reconnected = once(worker.broker, "connected");
    // Reset the TCP connection under amqplib, as a network failure would.
    /** @type {any} */ (worker.broker.connection).connection.stream.destroy(
      Object.assign(new Error("simulated connection reset"), { code: "ECONNRESET" }),
    );
    await disconnected;
    assert.equal((await fetch(url)).status, 503);
    await reconnected;
    assert.equal((await fetch(url)).status, 200);
    assert.ok(logs.some((l) => l.msg === "lost the broker connection, reconnecting"));

    // And it consumes again.
    const jobId = await s.submitJob("csv");
    await s.waitForEvent(jobId, "done");
    await worker.stop();
  });
});
