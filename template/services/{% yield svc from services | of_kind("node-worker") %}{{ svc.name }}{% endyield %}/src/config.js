// Configuration from the environment, validated once at start. A problem is
// reported as one ConfigError naming the variable, so a misconfigured container
// dies with a single readable line instead of a stack trace later on.

import { readFileSync } from "node:fs";

import { LEVELS } from "./log.js";

/** @typedef {import("./log.js").Level} Level */

/**
 * @typedef {object} Config
 * @property {string} serviceName
 * @property {string} databaseUrl
 * @property {string} rabbitmqUrl
 * @property {string} exportQueue
 * @property {string} deadLetterQueue
 * @property {string} eventsExchange
 * @property {string} exportsDir
 * @property {number} healthPort
 * @property {string} healthHost
 * @property {number} prefetch
 * @property {number} maxAttempts
 * @property {number} retentionDays Finished jobs and their files are kept this long.
 * @property {number} retentionSweepSeconds How often the retention sweep runs.
 * @property {Level} logLevel
 */

export class ConfigError extends Error {
  /** @override */
  name = "ConfigError";
}

/** @typedef {Record<string, string | undefined>} Env */

/**
 * @param {Env} env
 * @returns {Config}
 */
export function loadConfig(env = process.env) {
  const exportQueue = required(
    env,
    "EXPORT_QUEUE",
    "the durable queue to consume, e.g. api.exports",
  );
  return Object.freeze({
    serviceName: optional(env, "SERVICE_NAME") ?? "worker",
    databaseUrl: databaseUrl(env),
    rabbitmqUrl: rabbitmqUrl(env),
    exportQueue,
    deadLetterQueue: `${exportQueue}.dead`,
    eventsExchange: required(
      env,
      "EVENTS_EXCHANGE",
      "the topic exchange for job events, e.g. api.events",
    ),
    exportsDir: required(env, "EXPORTS_DIR", "the folder the export files are written to"),
    healthPort: integer(env, "HEALTH_PORT", 9090, 0, 65535),
    healthHost: optional(env, "HEALTH_HOST") ?? "0.0.0.0",
    prefetch: integer(env, "WORKER_PREFETCH", 4, 1, 1000),
    maxAttempts: integer(env, "MAX_ATTEMPTS", 5, 1, 1000),
    retentionDays: integer(env, "EXPORT_RETENTION_DAYS", 7, 1, 36500),
    retentionSweepSeconds: integer(env, "EXPORT_RETENTION_SWEEP_SECONDS", 3600, 1, 604800),
    logLevel: logLevel(env),
  });
}

/**
 * DATABASE_URL wins; otherwise the URL is built from the POSTGRES_* variables that
 * compose provides (the password as POSTGRES_PASSWORD_FILE, a Compose secret).
 * @param {Env} env
 */
function databaseUrl(env) {
  const explicit = optional(env, "DATABASE_URL");
  if (explicit) return checkedUrl("DATABASE_URL", explicit, ["postgres:", "postgresql:"]);
  const why = "or set DATABASE_URL";
  const user = required(env, "POSTGRES_USER", why);
  const password = secret(env, "POSTGRES_PASSWORD", why);
  const host = required(env, "POSTGRES_HOST", why);
  const port = integer(env, "POSTGRES_PORT", 5432, 1, 65535);
  // DATABASE_NAME is what compose passes; POSTGRES_DB (config/.env) is the fallback.
  const name = optional(env, "DATABASE_NAME") ?? required(env, "POSTGRES_DB", "or DATABASE_NAME");
  return `postgresql://${enc(user)}:${enc(password)}@${host}:${port}/${enc(name)}`;
}

/** @param {Env} env */
function rabbitmqUrl(env) {
  const explicit = optional(env, "RABBITMQ_URL");
  if (explicit) return checkedUrl("RABBITMQ_URL", explicit, ["amqp:", "amqps:"]);
  const why = "or set RABBITMQ_URL";
  const user = required(env, "RABBITMQ_DEFAULT_USER", why);
  const password = secret(env, "RABBITMQ_DEFAULT_PASS", why);
  const host = required(env, "RABBITMQ_HOST", why);
  const port = integer(env, "RABBITMQ_PORT", 5672, 1, 65535);
  // The empty path is the default virtual host "/".
  return `amqp://${enc(user)}:${enc(password)}@${host}:${port}/`;
}

/**
 * A secret: the contents of the file <NAME>_FILE names (e.g. a Compose secret in
 * /run/secrets; trailing newlines dropped), else the variable NAME itself.
 * @param {Env} env
 * @param {string} name
 * @param {string} hint
 */
function secret(env, name, hint) {
  const file = optional(env, `${name}_FILE`);
  if (file === undefined) return required(env, name, hint);
  let value;
  try {
    value = readFileSync(file, "utf8").replace(/[\r\n]+$/, "");
  } catch (error) {
    const reason = error instanceof Error && "code" in error ? error.code : String(error);
    throw new ConfigError(`${name}_FILE: cannot read ${file} (${reason})`);
  }
  if (!value) throw new ConfigError(`${name}_FILE: ${file} is empty`);
  return value;
}

/** @param {string} value */
const enc = (value) => encodeURIComponent(value);

/**
 * Unset and empty are the same: compose writes `VAR: ""` for "off".
 * @param {Env} env
 * @param {string} name
 */
function optional(env, name) {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

/**
 * @param {Env} env
 * @param {string} name
 * @param {string} hint
 */
function required(env, name, hint) {
  const value = optional(env, name);
  if (value === undefined) throw new ConfigError(`${name} is not set (${hint})`);
  return value;
}

/**
 * @param {Env} env
 * @param {string} name
 * @param {number} fallback
 * @param {number} min
 * @param {number} max
 */
function integer(env, name, fallback, min, max) {
  const raw = optional(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new ConfigError(
      `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

/** @param {Env} env */
function logLevel(env) {
  const raw = (optional(env, "LOG_LEVEL") ?? "info").toLowerCase();
  const level = raw === "warn" ? "warning" : raw; // Python's and Node's spellings both work
  if (!LEVELS.includes(/** @type {Level} */ (level))) {
    throw new ConfigError(
      `LOG_LEVEL must be one of ${LEVELS.join(", ")}, got ${JSON.stringify(raw)}`,
    );
  }
  return /** @type {Level} */ (level);
}

/**
 * @param {string} name
 * @param {string} value
 * @param {string[]} schemes
 */
function checkedUrl(name, value, schemes) {
  let url;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a valid URL`);
  }
  if (!schemes.includes(url.protocol)) {
    throw new ConfigError(`${name} must start with ${schemes.map((s) => `${s}//`).join(" or ")}`);
  }
  return value;
}
