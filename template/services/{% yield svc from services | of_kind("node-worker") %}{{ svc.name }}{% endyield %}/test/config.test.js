import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { ConfigError, loadConfig } from "../src/config.js";
import { spawnWorker } from "./helpers.js";

/** What compose passes, plus config/.env. */
const COMPOSE_ENV = {
  SERVICE_NAME: "worker",
  HEALTH_PORT: "9090",
  API_SERVICE: "api",
  POSTGRES_HOST: "postgres",
  DATABASE_NAME: "api",
  RABBITMQ_HOST: "rabbitmq",
  EXPORT_QUEUE: "api.exports",
  EVENTS_EXCHANGE: "api.events",
  EXPORTS_DIR: "/data/exports/api",
  POSTGRES_USER: "app user",
  POSTGRES_PASSWORD: "p@ss:w/rd",
  POSTGRES_DB: "app",
  RABBITMQ_DEFAULT_USER: "rabbit",
  RABBITMQ_DEFAULT_PASS: "s3cr#t",
  LOG_LEVEL: "info",
};

test("builds the URLs from the compose variables, encoding the credentials", () => {
  const config = loadConfig(COMPOSE_ENV);
  assert.equal(config.databaseUrl, "postgresql://app%20user:p%40ss%3Aw%2Frd@postgres:5432/api");
  assert.equal(config.rabbitmqUrl, "amqp://rabbit:s3cr%23t@rabbitmq:5672/");
  assert.equal(config.exportQueue, "api.exports");
  assert.equal(config.deadLetterQueue, "api.exports.dead");
  assert.equal(config.eventsExchange, "api.events");
  assert.equal(config.exportsDir, "/data/exports/api");
  assert.deepEqual(
    [config.healthPort, config.healthHost, config.prefetch, config.maxAttempts, config.logLevel],
    [9090, "0.0.0.0", 4, 5, "info"],
  );
  const url = new URL(config.databaseUrl);
  assert.equal(decodeURIComponent(url.password), "p@ss:w/rd");
});

test("passwords come from the files *_FILE names (Compose secrets), newline dropped", () => {
  const folder = mkdtempSync(join(tmpdir(), "worker-secrets-"));
  try {
    writeFileSync(join(folder, "postgres_password"), "from file:1\n");
    writeFileSync(join(folder, "rabbitmq_default_pass"), "rabbit/file");
    const env = {
      ...COMPOSE_ENV,
      POSTGRES_PASSWORD: "",
      POSTGRES_PASSWORD_FILE: join(folder, "postgres_password"),
      RABBITMQ_DEFAULT_PASS: "",
      RABBITMQ_DEFAULT_PASS_FILE: join(folder, "rabbitmq_default_pass"),
    };
    const config = loadConfig(env);
    assert.equal(decodeURIComponent(new URL(config.databaseUrl).password), "from file:1");
    assert.equal(decodeURIComponent(new URL(config.rabbitmqUrl).password), "rabbit/file");
    const missing = { ...env, POSTGRES_PASSWORD_FILE: join(folder, "absent") };
    assert.throws(() => loadConfig(missing), {
      name: "ConfigError",
      message: `POSTGRES_PASSWORD_FILE: cannot read ${join(folder, "absent")} (ENOENT)`,
    });
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

test("explicit URLs win and defaults apply", () => {
  const config = loadConfig({
    DATABASE_URL: "postgresql://u:p@db:6543/x",
    RABBITMQ_URL: "amqp://u:p@mq:5673/vhost",
    EXPORT_QUEUE: "q",
    EVENTS_EXCHANGE: "e",
    EXPORTS_DIR: "/tmp/x",
    HEALTH_PORT: "0",
    WORKER_PREFETCH: "8",
    MAX_ATTEMPTS: "3",
    LOG_LEVEL: "WARNING",
  });
  assert.equal(config.databaseUrl, "postgresql://u:p@db:6543/x");
  assert.equal(config.rabbitmqUrl, "amqp://u:p@mq:5673/vhost");
  assert.equal(config.serviceName, "worker");
  assert.deepEqual([config.healthPort, config.prefetch, config.maxAttempts], [0, 8, 3]);
  assert.equal(config.logLevel, "warning");
});

test("each problem is reported as one message naming the variable", () => {
  /** @param {Record<string, string | undefined>} change */
  const problem = (change) => {
    try {
      loadConfig({ ...COMPOSE_ENV, ...change });
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      return error.message;
    }
    assert.fail("no error");
  };
  assert.equal(
    problem({ EXPORT_QUEUE: undefined }),
    "EXPORT_QUEUE is not set (the durable queue to consume, e.g. api.exports)",
  );
  assert.match(problem({ EVENTS_EXCHANGE: "" }), /^EVENTS_EXCHANGE is not set/);
  assert.match(problem({ EXPORTS_DIR: " " }), /^EXPORTS_DIR is not set/);
  assert.match(
    problem({ POSTGRES_PASSWORD: undefined }),
    /^POSTGRES_PASSWORD is not set \(or set DATABASE_URL\)/,
  );
  assert.match(
    problem({ RABBITMQ_HOST: undefined }),
    /^RABBITMQ_HOST is not set \(or set RABBITMQ_URL\)/,
  );
  assert.match(problem({ HEALTH_PORT: "http" }), /^HEALTH_PORT must be an integer from 0 to 65535/);
  assert.match(problem({ WORKER_PREFETCH: "0" }), /^WORKER_PREFETCH must be an integer from 1/);
  assert.match(problem({ MAX_ATTEMPTS: "-1" }), /^MAX_ATTEMPTS must be an integer/);
  assert.match(
    problem({ LOG_LEVEL: "loud" }),
    /^LOG_LEVEL must be one of debug, info, warning, error/,
  );
  assert.match(
    problem({ DATABASE_URL: "mysql://x" }),
    /^DATABASE_URL must start with postgres:\/\//,
  );
  assert.match(problem({ RABBITMQ_URL: "not a url" }), /^RABBITMQ_URL is not a valid URL/);
});

test("retention: 7 days swept hourly by default, both validated", () => {
  const defaults = loadConfig(COMPOSE_ENV);
  assert.deepEqual([defaults.retentionDays, defaults.retentionSweepSeconds], [7, 3600]);
  const set = loadConfig({
    ...COMPOSE_ENV,
    EXPORT_RETENTION_DAYS: "30",
    EXPORT_RETENTION_SWEEP_SECONDS: "60",
  });
  assert.deepEqual([set.retentionDays, set.retentionSweepSeconds], [30, 60]);
  for (const [name, value] of [
    ["EXPORT_RETENTION_DAYS", "0"],
    ["EXPORT_RETENTION_DAYS", "1.5"],
    ["EXPORT_RETENTION_DAYS", "a week"],
    ["EXPORT_RETENTION_SWEEP_SECONDS", "0"],
    ["EXPORT_RETENTION_SWEEP_SECONDS", "-60"],
  ]) {
    assert.throws(
      () => loadConfig({ ...COMPOSE_ENV, [name]: value }),
      (error) =>
        error instanceof ConfigError &&
        error.message.startsWith(`${name} must be an integer from 1 to `) &&
        !error.message.includes("\n"),
      `${name}=${value}`,
    );
  }
});

test("the worker exits 1 with one clear line when a variable is missing", async () => {
  const { EXPORT_QUEUE: _, ...env } = COMPOSE_ENV;
  const worker = spawnWorker(env);
  const { code } = await worker.exited;
  assert.equal(code, 1);
  assert.equal(
    worker.stderr(),
    "config error: EXPORT_QUEUE is not set (the durable queue to consume, e.g. api.exports)\n",
  );
  assert.deepEqual(worker.logs, []);
});
