// GET /health for the container healthcheck: 200 while the broker connection and
// its channel are open, 503 otherwise (the worker cannot take jobs then).

import http from "node:http";

/**
 * @param {object} options
 * @param {number} options.port 0 picks a free port (see server.address()).
 * @param {string} [options.host]
 * @param {() => boolean} options.isHealthy
 * @returns {Promise<http.Server>}
 */
export function startHealthServer({ port, host = "0.0.0.0", isHealthy }) {
  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    if (url.pathname !== "/health") {
      response.writeHead(404, { "content-type": "application/json" });
      response.end(JSON.stringify({ detail: "not found" }));
      return;
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    const healthy = isHealthy();
    response.writeHead(healthy ? 200 : 503, {
      "content-type": "application/json",
      "cache-control": "no-store",
    });
    response.end(JSON.stringify({ status: healthy ? "ok" : "unavailable" }));
  });
  // Keep-alive sockets from a prober would otherwise delay close() at shutdown.
  server.keepAliveTimeout = 1000;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

/**
 * Stop listening and drop idle connections.
 * @param {http.Server} server
 * @returns {Promise<void>}
 */
export function closeHealthServer(server) {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

/**
 * @param {http.Server} server
 * @returns {number}
 */
export function portOf(server) {
  const address = server.address();
  return typeof address === "object" && address !== null ? address.port : 0;
}
