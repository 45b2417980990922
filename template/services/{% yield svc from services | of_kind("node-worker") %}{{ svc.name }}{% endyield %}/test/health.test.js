import assert from "node:assert/strict";
import { test } from "node:test";

import { startHealthServer } from "../src/health.js";

test("health answers 200 when healthy and 503 when not", async () => {
  let healthy = true;
  const server = await startHealthServer(0, () => healthy);
  const url = `http://127.0.0.1:${server.address().port}/health`;
  try {
    assert.equal((await fetch(url)).status, 200);
    healthy = false;
    assert.equal((await fetch(url)).status, 503);
  } finally {
    server.close();
  }
});
