import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";

import {
  COLUMNS,
  JOB_COLUMNS,
  SELF_COLUMNS,
  csvField,
  csvLine,
  publishFile,
  removeStaleTemps,
  writeTempFile,
} from "../src/exporter.js";
import { jobEvent, parseJobMessage } from "../src/jobs.js";

/** @type {import("../src/db.js").UserRow[]} */
const ROWS = [
  {
    id: "00000000-0000-4000-8000-000000000001",
    email: "a@example.com",
    full_name: 'Doe, "J"\nline 2',
    role: "admin",
    is_active: true,
    created_at: "2025-01-02T03:04:05.123456+00:00",
  },
  {
    id: "00000000-0000-4000-8000-000000000002",
    email: "b@example.com",
    full_name: null,
    role: "user",
    is_active: false,
    created_at: "2025-01-02T03:04:06+00:00",
  },
];

/**
 * @param {import("../src/db.js").ExportRecord[][]} batches
 * @param {import("../src/db.js").Scope} [scope]
 */
async function* fromBatches(batches, scope = "all") {
  for (const rows of batches) yield { scope, rows };
}

/** @param {import("node:test").TestContext} t */
async function tempDir(t) {
  const dir = await mkdtemp(path.join(os.tmpdir(), "exporter-test-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test("CSV fields are quoted as RFC 4180 says", () => {
  assert.equal(csvField(null), "");
  assert.equal(csvField(undefined), "");
  assert.equal(csvField(true), "true");
  assert.equal(csvField("plain"), "plain");
  assert.equal(csvField("a,b"), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField("two\nlines"), '"two\nlines"');
  assert.equal(csvField("cr\r"), '"cr\r"');
  assert.equal(csvLine(["a", null, 'b"']), 'a,,"b"""\r\n');
});

test("CSV fields that a spreadsheet would run as a formula are neutralised", () => {
  assert.equal(csvField('=HYPERLINK("http://x")'), '"\'=HYPERLINK(""http://x"")"');
  assert.equal(csvField("=1+2"), "'=1+2");
  assert.equal(csvField("+1 555 0100"), "'+1 555 0100");
  assert.equal(csvField("-2+3"), "'-2+3");
  assert.equal(csvField("@SUM(A1)"), "'@SUM(A1)");
  assert.equal(csvField("\tcmd"), "'\tcmd");
  assert.equal(csvField("\rcmd"), '"\'\rcmd"');
  // Only a leading character counts; ordinary values are left exactly as they are.
  for (const plain of ["Ada Admin", "a@example.com", "x=1", "2025-01-02T03:04:05+00:00", "", "'"])
    assert.equal(csvField(plain), plain);
  assert.equal(csvField(42), "42");
  assert.equal(csvField(false), "false");
});

test("the CSV file neutralises formulas, the JSON file keeps the values as they are", async (t) => {
  const dir = await tempDir(t);
  const rows = [{ ...ROWS[1], full_name: "=cmd|' /C calc'!A0", email: "@evil.example.com" }];
  const csv = await writeTempFile({ dir, jobId: "f", format: "csv", batches: fromBatches([rows]) });
  const line = (await readFile(csv.tempPath, "utf8")).split("\r\n")[1];
  assert.equal(
    line,
    `${rows[0].id},'@evil.example.com,'=cmd|' /C calc'!A0,user,false,${rows[0].created_at}`,
  );
  const json = await writeTempFile({
    dir,
    jobId: "f",
    format: "json",
    batches: fromBatches([rows]),
  });
  assert.deepEqual(JSON.parse(await readFile(json.tempPath, "utf8")), rows);
});

test("the CSV writer streams a header and the rows to a temporary file", async (t) => {
  const dir = await tempDir(t);
  const id = "00000000-0000-4000-8000-00000000000a";
  const result = await writeTempFile({
    dir,
    jobId: id,
    format: "csv",
    batches: fromBatches([ROWS.slice(0, 1), ROWS.slice(1)]),
  });
  assert.equal(result.rowCount, 2);
  assert.match(path.basename(result.tempPath), new RegExp(`^\\.${id}\\.csv\\.[0-9a-f]{12}\\.tmp$`));
  const text = await readFile(result.tempPath, "utf8");
  assert.equal(Buffer.byteLength(text), result.fileSize);
  assert.equal(
    text,
    "id,email,full_name,role,is_active,created_at\r\n" +
      `${ROWS[0].id},a@example.com,"Doe, ""J""\nline 2",admin,true,2025-01-02T03:04:05.123456+00:00\r\n` +
      `${ROWS[1].id},b@example.com,,user,false,2025-01-02T03:04:06+00:00\r\n`,
  );
});

test("the JSON writer produces an array of objects, also when empty", async (t) => {
  const dir = await tempDir(t);
  const full = await writeTempFile({
    dir,
    jobId: "x",
    format: "json",
    batches: fromBatches([ROWS]),
  });
  assert.deepEqual(JSON.parse(await readFile(full.tempPath, "utf8")), ROWS);
  const empty = await writeTempFile({
    dir,
    jobId: "y",
    format: "json",
    batches: fromBatches([[]]),
  });
  assert.equal(await readFile(empty.tempPath, "utf8"), "[]\n");
  assert.equal(empty.rowCount, 0);
});

/** A "self" export: the owner's profile, then their jobs. */
const SELF_RECORDS = [
  { record: "profile", ...ROWS[1] },
  {
    record: "export_job",
    id: "00000000-0000-4000-8000-0000000000b1",
    format: "csv",
    status: "done",
    row_count: 3,
    file_size: 120,
    error: null,
    created_at: "2025-01-03T00:00:00+00:00",
    started_at: "2025-01-03T00:00:01+00:00",
    finished_at: "2025-01-03T00:00:02+00:00",
  },
  {
    record: "export_job",
    id: "00000000-0000-4000-8000-0000000000b2",
    format: "json",
    status: "running",
    row_count: null,
    file_size: null,
    error: null,
    created_at: "2025-01-04T00:00:00+00:00",
    started_at: "2025-01-04T00:00:01+00:00",
    finished_at: null,
  },
];

test("a self-scope CSV is one table: a record column, the other kind's columns empty", async (t) => {
  const dir = await tempDir(t);
  const batches = fromBatches([SELF_RECORDS.slice(0, 1), SELF_RECORDS.slice(1)], "self");
  const result = await writeTempFile({ dir, jobId: "s", format: "csv", batches });
  assert.equal(result.rowCount, 3);
  const [profile, done, running] = SELF_RECORDS;
  assert.equal(
    await readFile(result.tempPath, "utf8"),
    "record,id,email,full_name,role,is_active,created_at,format,status,row_count,file_size,error,started_at,finished_at\r\n" +
      `profile,${profile.id},b@example.com,,user,false,${profile.created_at},,,,,,,\r\n` +
      `export_job,${done.id},,,,,${done.created_at},csv,done,3,120,,${done.started_at},${done.finished_at}\r\n` +
      `export_job,${running.id},,,,,${running.created_at},json,running,,,,${running.started_at},\r\n`,
  );
  assert.deepEqual(SELF_COLUMNS, [
    "record",
    ...COLUMNS,
    ...JOB_COLUMNS.filter((c) => c !== "id" && c !== "created_at"),
  ]);
});

test("a self-scope JSON is an array of records, each with only its own keys", async (t) => {
  const dir = await tempDir(t);
  const batches = fromBatches([SELF_RECORDS], "self");
  const result = await writeTempFile({ dir, jobId: "s", format: "json", batches });
  const parsed = JSON.parse(await readFile(result.tempPath, "utf8"));
  assert.deepEqual(parsed, SELF_RECORDS);
  assert.deepEqual(Object.keys(parsed[0]), ["record", ...COLUMNS]);
  assert.deepEqual(Object.keys(parsed[1]), ["record", ...JOB_COLUMNS]);
});

test("an export without any batch (so without a scope) fails and leaves no file", async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(
    writeTempFile({ dir, jobId: "n", format: "csv", batches: fromBatches([]) }),
    /no scope/,
  );
  assert.deepEqual(await readdir(dir), []);
});

test("a failed write leaves no temporary file; publishing renames; stale files go", async (t) => {
  const dir = await tempDir(t);
  async function* failing() {
    yield { scope: /** @type {const} */ ("all"), rows: ROWS };
    throw new Error("database gone");
  }
  await assert.rejects(
    writeTempFile({ dir, jobId: "z", format: "csv", batches: failing() }),
    /database gone/,
  );
  assert.deepEqual(await readdir(dir), []);

  const ok = await writeTempFile({ dir, jobId: "z", format: "csv", batches: fromBatches([ROWS]) });
  await writeFile(path.join(dir, ".z.csv.0123456789ab.tmp"), "stale");
  await writeFile(path.join(dir, ".other.csv.0123456789ab.tmp"), "another job's");
  await publishFile(ok.tempPath, path.join(dir, "z.csv"));
  assert.deepEqual(await removeStaleTemps(dir, "z"), [".z.csv.0123456789ab.tmp"]);
  assert.deepEqual((await readdir(dir)).sort(), [".other.csv.0123456789ab.tmp", "z.csv"]);
});

test("job messages are validated", () => {
  const id = "0A1B2C3D-0000-4000-8000-000000000001";
  assert.deepEqual(parseJobMessage(Buffer.from(JSON.stringify({ job_id: id, format: "json" }))), {
    ok: true,
    jobId: id.toLowerCase(),
    format: "json",
  });
  const reason = (/** @type {string} */ text) => {
    const parsed = parseJobMessage(Buffer.from(text));
    return parsed.ok ? null : parsed.reason;
  };
  assert.equal(reason("{"), "not valid JSON");
  assert.equal(reason("null"), "not a JSON object");
  assert.equal(reason('{"format": "csv"}'), "job_id is missing or not a UUID");
  assert.equal(
    reason(`{"job_id": "${id}", "format": "pdf"}`),
    "format is missing or not csv or json",
  );
});

test("events carry exactly the contract's keys", () => {
  /** @type {import("../src/db.js").Job} */
  const job = {
    id: "j",
    owner_id: "o",
    format: "csv",
    status: "done",
    error: null,
    row_count: 2,
    file_name: "j.csv",
    file_size: 10,
    attempts: 1,
    updated_at: "2025-01-01T00:00:00.000001+00:00",
  };
  assert.deepEqual(jobEvent(job), {
    job_id: "j",
    owner_id: "o",
    status: "done",
    row_count: 2,
    file_name: "j.csv",
    file_size: 10,
    error: null,
    updated_at: "2025-01-01T00:00:00.000001+00:00",
  });
});
