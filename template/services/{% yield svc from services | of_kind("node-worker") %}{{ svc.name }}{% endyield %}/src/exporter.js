// Export files: CSV (RFC 4180) and JSON writers fed batch by batch, written to a
// temporary file beside the final one and made durable (fsync) before anyone may
// rename it into place, so a reader never sees a half-written export.

import { randomBytes } from "node:crypto";
import { open, readdir, rename, rm } from "node:fs/promises";
import path from "node:path";

/** @typedef {import("./db.js").ExportBatch} ExportBatch */
/** @typedef {import("./db.js").ExportRecord} ExportRecord */
/** @typedef {import("./db.js").Scope} Scope */
/** @typedef {"csv" | "json"} Format */

/** The columns of an "all" export (every user), in file order (never hashed_password). */
export const COLUMNS = /** @type {const} */ ([
  "id",
  "email",
  "full_name",
  "role",
  "is_active",
  "created_at",
]);

/** The owner's own export jobs in a "self" export: what the API shows them of each. */
export const JOB_COLUMNS = /** @type {const} */ ([
  "id",
  "format",
  "status",
  "row_count",
  "file_size",
  "error",
  "created_at",
  "started_at",
  "finished_at",
]);

/**
 * A "self" export is one table of two kinds of record, told apart by `record`:
 * `profile` (the user columns) and `export_job` (the job columns). `id` and
 * `created_at` are the record's own; the other kind's columns stay empty in CSV
 * and are left out in JSON.
 */
export const SELF_COLUMNS = /** @type {const} */ ([
  "record",
  ...COLUMNS,
  ...JOB_COLUMNS.filter((column) => !(/** @type {readonly string[]} */ (COLUMNS).includes(column))),
]);

/** @type {Record<string, readonly string[]>} The JSON keys of each kind of "self" record. */
const RECORD_KEYS = {
  profile: ["record", ...COLUMNS],
  export_job: ["record", ...JOB_COLUMNS],
};

/**
 * The shape of the file for one scope.
 * @typedef {object} Layout
 * @property {readonly string[]} columns The CSV header.
 * @property {(row: ExportRecord) => readonly string[]} keys A JSON object's keys.
 */

/** @type {Record<Scope, Layout>} */
export const LAYOUTS = {
  all: { columns: COLUMNS, keys: () => COLUMNS },
  self: { columns: SELF_COLUMNS, keys: (row) => RECORD_KEYS[String(row.record)] ?? SELF_COLUMNS },
};

/**
 * How one format is written: text before the rows, for each row, and after them.
 * @typedef {object} Writer
 * @property {(layout: Layout) => string} begin
 * @property {(layout: Layout, row: ExportRecord, index: number) => string} row
 * @property {(count: number) => string} end
 */

/** @type {Record<Format, Writer>} */
export const WRITERS = {
  csv: {
    begin: (layout) => csvLine(layout.columns),
    row: (layout, row) => csvLine(layout.columns.map((column) => row[column])),
    end: () => "",
  },
  json: {
    // An array written element by element: the whole document never sits in memory.
    begin: () => "[",
    row: (layout, row, index) =>
      `${index === 0 ? "\n" : ",\n"}  ${JSON.stringify(pick(row, layout.keys(row)))}`,
    end: (count) => (count === 0 ? "]\n" : "\n]\n"),
  },
};

/**
 * RFC 4180: fields separated by commas, lines ended by CRLF, a field quoted when it
 * holds a comma, quote, CR or LF, quotes doubled. null becomes the empty field.
 * @param {readonly unknown[]} values
 */
export function csvLine(values) {
  return `${values.map(csvField).join(",")}\r\n`;
}

// Spreadsheets run a cell that starts with one of these as a formula (CSV
// injection): a user could name themselves `=HYPERLINK(...)` and have it run in
// the admin's spreadsheet. A leading single quote makes the cell plain text (OWASP).
const FORMULA_START = /^[=+\-@\t\r]/;

/** @param {unknown} value */
export function csvField(value) {
  if (value === null || value === undefined) return "";
  let text = String(value);
  if (FORMULA_START.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * The row's exported keys, in order (whatever else the query returned).
 * @param {ExportRecord} row
 * @param {readonly string[]} keys
 */
function pick(row, keys) {
  return Object.fromEntries(keys.map((key) => [key, row[key]]));
}

/**
 * `.<job_id>.<format>.<random>.tmp`: hidden, unique per attempt, and easy to find
 * again for cleanup after a crash.
 * @param {string} jobId
 * @param {Format} format
 */
export function tempName(jobId, format) {
  return `.${jobId}.${format}.${randomBytes(6).toString("hex")}.tmp`;
}

const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const FINAL_NAME = new RegExp(`^(${UUID})\\.(?:csv|json)$`);
const TEMP_NAME = new RegExp(`^\\.(${UUID})\\.(?:csv|json)\\.[0-9a-f]{12}\\.tmp$`);

/**
 * @typedef {object} ExportFileName
 * @property {string} jobId
 * @property {boolean} temporary
 */

/**
 * Which job a file in EXPORTS_DIR belongs to, if it is one of ours at all: a
 * published `<job_id>.<format>` or a temporary file of tempName.
 * @param {string} name
 * @returns {ExportFileName | null}
 */
export function exportFileOf(name) {
  const final = FINAL_NAME.exec(name);
  if (final) return { jobId: final[1], temporary: false };
  const temp = TEMP_NAME.exec(name);
  return temp ? { jobId: temp[1], temporary: true } : null;
}

/**
 * Remove temporary files left by earlier attempts of this job (a worker killed
 * mid-export). Only this job's files: other jobs may be writing right now.
 * @param {string} dir
 * @param {string} jobId
 * @returns {Promise<string[]>} The names removed.
 */
export async function removeStaleTemps(dir, jobId) {
  const prefix = `.${jobId}.`;
  const stale = (await readdir(dir)).filter((n) => n.startsWith(prefix) && n.endsWith(".tmp"));
  await Promise.all(stale.map((name) => rm(path.join(dir, name), { force: true })));
  return stale;
}

/**
 * Write all rows to a new temporary file in `dir` and fsync it. The file's layout
 * follows the scope of the first batch.
 * @param {object} options
 * @param {string} options.dir
 * @param {string} options.jobId
 * @param {Format} options.format
 * @param {AsyncIterable<ExportBatch>} options.batches
 * @returns {Promise<{ tempPath: string, rowCount: number, fileSize: number }>}
 */
export async function writeTempFile({ dir, jobId, format, batches }) {
  const writer = WRITERS[format];
  const tempPath = path.join(dir, tempName(jobId, format));
  const file = await open(tempPath, "wx", 0o644);
  let rowCount = 0;
  let fileSize = 0;
  try {
    /** @type {Layout | null} */
    let layout = null;
    for await (const { scope, rows } of batches) {
      if (layout === null) {
        layout = LAYOUTS[scope];
        fileSize += await writeAll(file, writer.begin(layout));
      }
      const shape = layout;
      const chunk = rows.map((row, i) => writer.row(shape, row, rowCount + i)).join("");
      rowCount += rows.length;
      fileSize += await writeAll(file, chunk);
    }
    if (layout === null) throw new Error("the export had no scope (no batch at all)");
    fileSize += await writeAll(file, writer.end(rowCount));
    await file.sync();
  } catch (error) {
    await file.close().catch(() => {});
    await rm(tempPath, { force: true });
    throw error;
  }
  await file.close();
  return { tempPath, rowCount, fileSize };
}

/**
 * Move the finished file into place (atomic within one file system) and fsync the
 * folder so that the rename itself survives a power cut.
 * @param {string} tempPath
 * @param {string} finalPath
 */
export async function publishFile(tempPath, finalPath) {
  await rename(tempPath, finalPath);
  const folder = await open(path.dirname(finalPath), "r");
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}

/**
 * FileHandle.write may write less than asked: loop until everything is out.
 * @param {import("node:fs/promises").FileHandle} file
 * @param {string} text
 * @returns {Promise<number>} Bytes written.
 */
async function writeAll(file, text) {
  const bytes = Buffer.from(text, "utf8");
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await file.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
  return bytes.length;
}
