// The worker's entry point.
import { startHealthServer } from "./health.js";

const port = Number(process.env.HEALTH_PORT ?? 9090);
const server = await startHealthServer(port);
console.log(JSON.stringify({ level: "info", msg: "worker started", healthPort: port }));

// Stop cleanly on SIGTERM (docker stop) and SIGINT (Ctrl-C).
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
