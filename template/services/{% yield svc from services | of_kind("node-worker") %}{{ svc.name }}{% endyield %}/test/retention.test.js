// The retention sweep against a real PostgreSQL (DATABASE_URL) and a real folder,
// called directly with its own clock: no waiting for days, no sleeps.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, beforeEach, test } from "node:test";

import pg from "pg";

import { sweepExports } from "../src/retention.js";
import {
  createTestDatabase,
  exportsFolder,
  insertJob,
  insertUser,
  randomSuffix,
  serverUrls,
} from "./helpers.js";

const { databaseUrl } = serverUrls();

// The sweeps' clock: 7 days of retention make 2030-01-03T00:00:00Z the cut-off.
const NOW = new Date("2030-01-10T00:00:00Z");
const DAYS = 7;
const EXPIRED = "2030-01-02T23:59:59.999999Z";
const AT_CUTOFF = "2030-01-03T00:00:00Z";
const RECENT = "2030-01-09T12:00:00Z";

/** @type {Awaited<ReturnType<typeof createTestDatabase>>} */
let db;
/** The worker's own role: the sweep must get by with its privileges. */
/** @type {pg.Pool} */
let workerPool;

before(async () => {
  db = await createTestDatabase(databaseUrl);
  workerPool = new pg.Pool({ connectionString: db.workerUrl, max: 4 });
});

// A sweep covers the whole table: each test starts from an empty one.
beforeEach(() => db.pool.query("TRUNCATE users CASCADE"));

after(async () => {
  await workerPool?.end();
  await db?.drop();
});

/** @param {import("node:test").TestContext} t */
async function folder(t) {
  const { dir, remove } = await exportsFolder();
  t.after(remove);
  return dir;
}

/**
 * @param {string} dir
 * @param {string[]} names
 */
async function touch(dir, names) {
  await Promise.all(names.map((name) => writeFile(path.join(dir, name), "data")));
}

const newUser = () => insertUser(db.pool, { email: `r-${randomSuffix()}@example.com` });

/** @param {string[]} ids */
async function remainingJobs(ids) {
  const { rows } = await db.pool.query(
    "SELECT id::text AS id FROM export_jobs WHERE id = ANY($1::uuid[])",
    [ids],
  );
  return rows.map((r) => r.id).sort();
}

/**
 * A finished job and, for a done one, its published file.
 * @param {string} dir
 * @param {string} ownerId
 * @param {string} finishedAt
 * @param {"done" | "failed"} [status]
 */
async function finishedJob(dir, ownerId, finishedAt, status = "done") {
  const id = randomUUID();
  const fileName = status === "done" ? `${id}.csv` : null;
  await db.pool.query(
    `INSERT INTO export_jobs (id, owner_id, format, status, finished_at, file_name, attempts)
     VALUES ($1, $2, 'csv', $3, $4, $5, 1)`,
    [id, ownerId, status, finishedAt, fileName],
  );
  if (fileName) await touch(dir, [fileName]);
  return id;
}

test("expired finished jobs go with their files; the rest stays", async (t) => {
  const dir = await folder(t);
  const owner = await newUser();
  const expiredDone = await finishedJob(dir, owner, EXPIRED);
  const expiredFailed = await finishedJob(dir, owner, EXPIRED, "failed");
  const atCutoff = await finishedJob(dir, owner, AT_CUTOFF);
  const recent = await finishedJob(dir, owner, RECENT);
  // Unfinished jobs never expire, however old: a running one's export is in progress.
  const queued = await insertJob(db.pool, { ownerId: owner });
  const running = await insertJob(db.pool, { ownerId: owner, status: "running", attempts: 1 });
  const runningTemp = `.${running}.csv.0123456789ab.tmp`;
  const queuedLeftover = `.${queued}.json.0123456789ab.tmp`; // a crashed attempt: the retry's
  const failedLeftover = `.${expiredFailed}.csv.aaaaaaaaaaaa.tmp`;
  const recentLeftover = `.${recent}.csv.bbbbbbbbbbbb.tmp`; // its job finished: garbage
  const strangers = ["README.txt", "notes.csv", `${randomUUID()}.pdf`, `.${randomUUID()}.csv`];
  await touch(dir, [runningTemp, queuedLeftover, failedLeftover, recentLeftover, ...strangers]);
  await mkdir(path.join(dir, "lost+found"));

  const swept = await sweepExports({ pool: workerPool, dir, retentionDays: DAYS, now: NOW });

  assert.deepEqual(swept.jobs.sort(), [expiredDone, expiredFailed].sort());
  assert.deepEqual(
    swept.files.sort(),
    [`${expiredDone}.csv`, failedLeftover, recentLeftover].sort(),
  );
  assert.deepEqual(
    await remainingJobs([expiredDone, expiredFailed, atCutoff, recent, queued, running]),
    [atCutoff, recent, queued, running].sort(),
  );
  assert.deepEqual(
    (await readdir(dir)).sort(),
    [
      `${atCutoff}.csv`,
      `${recent}.csv`,
      runningTemp,
      queuedLeftover,
      "lost+found",
      ...strangers,
    ].sort(),
  );

  const again = await sweepExports({ pool: workerPool, dir, retentionDays: DAYS, now: NOW });
  assert.deepEqual(again, { jobs: [], files: [] }, "a second sweep finds nothing more");
});

test("the files of a user the API deleted go at the next sweep, though not expired", async (t) => {
  const dir = await folder(t);
  const owner = await newUser();
  const keeper = await newUser();
  const gone = await finishedJob(dir, owner, RECENT);
  const running = await insertJob(db.pool, { ownerId: owner, status: "running", attempts: 1 });
  const kept = await finishedJob(dir, keeper, RECENT);
  await touch(dir, [`.${running}.json.0123456789ab.tmp`]);
  await db.pool.query("DELETE FROM users WHERE id = $1", [owner]); // the jobs cascade

  const swept = await sweepExports({ pool: workerPool, dir, retentionDays: DAYS, now: NOW });

  assert.deepEqual(swept.jobs, []);
  assert.deepEqual(swept.files.sort(), [`${gone}.csv`, `.${running}.json.0123456789ab.tmp`].sort());
  assert.deepEqual(await readdir(dir), [`${kept}.csv`]);
});

test("sweeps running at once delete each expired row once, and none of them fails", async (t) => {
  const dir = await folder(t);
  const owner = await newUser();
  const ids = [];
  for (let i = 0; i < 40; i += 1) ids.push(await finishedJob(dir, owner, EXPIRED));

  const sweeps = await Promise.all(
    [1, 2, 3].map(() => sweepExports({ pool: workerPool, dir, retentionDays: DAYS, now: NOW })),
  );

  const deleted = sweeps.flatMap((s) => s.jobs);
  assert.deepEqual(deleted.sort(), [...ids].sort(), "every row, each exactly once");
  assert.deepEqual(await remainingJobs(ids), []);
  assert.deepEqual(await readdir(dir), []);
});

test("the clock decides: a job expires once its retention has passed", async (t) => {
  const dir = await folder(t);
  const owner = await newUser();
  const id = await finishedJob(dir, owner, RECENT);
  const sweep = (/** @type {Date} */ now, days = DAYS) =>
    sweepExports({ pool: workerPool, dir, retentionDays: days, now });

  assert.deepEqual((await sweep(new Date("2030-01-16T11:59:59Z"))).jobs, []);
  assert.deepEqual((await sweep(new Date("2030-01-10T12:00:01Z"), 1)).jobs, [id]);
  assert.deepEqual(await readdir(dir), []);
});

test("a missing exports folder is no error", async (t) => {
  const swept = await sweepExports({
    pool: workerPool,
    dir: path.join(await folder(t), "not-yet"),
    retentionDays: DAYS,
    now: NOW,
  });
  assert.deepEqual(swept, { jobs: [], files: [] });
});
