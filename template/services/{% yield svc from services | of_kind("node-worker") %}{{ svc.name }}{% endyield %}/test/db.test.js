// Which database errors are retried: the moment (a restart, a dropped connection)
// rather than the statement.
import assert from "node:assert/strict";
import { test } from "node:test";

import { isTransient } from "../src/db.js";

/**
 * An error as node's socket layer reports it (code and syscall), without the network.
 * @param {string} code
 * @param {string} syscall
 */
function socketError(code, syscall) {
  return Object.assign(new Error(`${syscall} ${code} postgres`), { code, syscall });
}

test("a database host that does not resolve while its container restarts is transient", () => {
  assert.equal(isTransient(socketError("ENOTFOUND", "getaddrinfo")), true);
  assert.equal(isTransient(socketError("EAI_AGAIN", "getaddrinfo")), true);
  assert.equal(isTransient(socketError("ECONNREFUSED", "connect")), true);
});

test("server shutdown and connection SQLSTATEs are transient, a bad statement is not", () => {
  const sqlError = (/** @type {string} */ code) =>
    Object.assign(new Error("from the server"), { code });
  assert.equal(isTransient(sqlError("57P01")), true); // terminating: administrator command
  assert.equal(isTransient(sqlError("08006")), true); // connection failure
  assert.equal(isTransient(sqlError("42P01")), false); // undefined table
  assert.equal(isTransient(new Error("Connection terminated unexpectedly")), true);
  assert.equal(isTransient("not an error"), false);
});
