import assert from "node:assert/strict";
import { test } from "node:test";

import { closeHealthServer, portOf, startHealthServer } from "../src/health.js";

test("health answers 200 when healthy and 503 when not", async (t) => {
  let healthy = true;
  const server = await startHealthServer({ port: 0, host: "127.0.0.1", isHealthy: () => healthy });
  t.after(() => closeHealthServer(server));
  const base = `http://127.0.0.1:${portOf(server)}`;

  const ok = await fetch(`${base}/health`);
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { status: "ok" });
  healthy = false;
  const down = await fetch(`${base}/health`);
  assert.equal(down.status, 503);
  assert.deepEqual(await down.json(), { status: "unavailable" });
  assert.equal((await fetch(`${base}/other`)).status, 404);
  assert.equal((await fetch(`${base}/health`, { method: "POST" })).status, 405);
});
