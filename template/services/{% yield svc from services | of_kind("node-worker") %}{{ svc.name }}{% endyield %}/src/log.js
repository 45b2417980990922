// JSON-lines logging on stdout: one object per line, the shape the API's logs have
// ({"time", "level", "service", "msg", ...fields}), so one log pipeline reads both.

/** @typedef {"debug" | "info" | "warning" | "error"} Level */
/** @typedef {Record<string, unknown>} Fields */

/**
 * @typedef {object} Logger
 * @property {(msg: string, fields?: Fields) => void} debug
 * @property {(msg: string, fields?: Fields) => void} info
 * @property {(msg: string, fields?: Fields) => void} warning
 * @property {(msg: string, fields?: Fields) => void} error
 * @property {(fields: Fields) => Logger} child A logger that adds `fields` to every line.
 */

/** @type {Record<Level, number>} */
const RANK = { debug: 10, info: 20, warning: 30, error: 40 };

export const LEVELS = /** @type {Level[]} */ (Object.keys(RANK));

/**
 * @param {object} options
 * @param {string} options.service
 * @param {Level} [options.level]
 * @param {(line: string) => void} [options.write] Where lines go (tests capture them).
 * @returns {Logger}
 */
export function createLogger({ service, level = "info", write = writeStdout }) {
  const threshold = RANK[level];
  /** @param {Fields} bound */
  const make = (bound) => {
    /** @param {Level} lineLevel */
    const emit =
      (lineLevel) =>
      (/** @type {string} */ msg, /** @type {Fields} */ fields = {}) => {
        if (RANK[lineLevel] < threshold) return;
        const line = { time: new Date().toISOString(), level: lineLevel, service, msg };
        write(JSON.stringify({ ...line, ...bound, ...serializeFields(fields) }, replacer));
      };
    return {
      debug: emit("debug"),
      info: emit("info"),
      warning: emit("warning"),
      error: emit("error"),
      child: (/** @type {Fields} */ more) => make({ ...bound, ...more }),
    };
  };
  return make({});
}

/** @param {string} line */
function writeStdout(line) {
  process.stdout.write(`${line}\n`);
}

/**
 * Errors do not serialise with JSON.stringify; keep their message and code.
 * @param {Fields} fields
 * @returns {Fields}
 */
function serializeFields(fields) {
  /** @type {Fields} */
  const out = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key] = value instanceof Error ? describeError(value) : value;
  }
  return out;
}

/**
 * A short, single-line description of an error for logs and the job's `error` column.
 * @param {unknown} error
 * @returns {string}
 */
export function describeError(error) {
  if (!(error instanceof Error)) return String(error);
  const code = errorCode(error);
  const text = error.message || error.name;
  return code ? `${text} (${String(code)})` : text;
}

/**
 * The `code` of a Node.js system error or a PostgreSQL error (its SQLSTATE), if any.
 * @param {unknown} error
 * @returns {unknown}
 */
export function errorCode(error) {
  return error instanceof Error && "code" in error ? error.code : undefined;
}

/**
 * BigInts (never expected, but never fatal either) become strings.
 * @param {string} _key
 * @param {unknown} value
 */
function replacer(_key, value) {
  return typeof value === "bigint" ? value.toString() : value;
}
