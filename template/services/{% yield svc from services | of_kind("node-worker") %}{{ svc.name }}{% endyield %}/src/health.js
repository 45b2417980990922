// A small HTTP health endpoint for the compose healthcheck.
import http from "node:http";

/**
 * Start answering GET /health on `port`.
 * @param {number} port
 * @param {() => boolean} isHealthy
 * @returns {Promise<http.Server>}
 */
export function startHealthServer(port, isHealthy = () => true) {
  const server = http.createServer((request, response) => {
    if (request.url !== "/health") {
      response.writeHead(404).end();
      return;
    }
    const healthy = isHealthy();
    response.writeHead(healthy ? 200 : 503, { "content-type": "application/json" });
    response.end(JSON.stringify({ status: healthy ? "ok" : "unhealthy" }));
  });
  return new Promise((resolve) => server.listen(port, () => resolve(server)));
}
