import type { ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";

import react from "@vitejs/plugin-react";
import { loadEnv, type Plugin } from "vite";
import { defineConfig } from "vitest/config";

// PORT and API_UPSTREAM come from the environment (Docker, the native boot),
// else from .env, which the template renders with this service's defaults.
// The dev server proxies /api to the API as the production nginx does; the
// proxy streams, so server-sent events (/api/v1/events) arrive unbuffered.

/** `GET /health` answers 200 JSON on the dev and preview servers too, as nginx does. */
function health(): Plugin {
  const answer = (_request: unknown, response: ServerResponse) => {
    response.setHeader("Content-Type", "application/json");
    response.setHeader("Cache-Control", "no-store");
    response.end('{"status":"ok"}');
  };
  return {
    name: "health",
    configureServer(server) {
      server.middlewares.use("/health", answer);
    },
    configurePreviewServer(server) {
      server.middlewares.use("/health", answer);
    },
  };
}

export default defineConfig(({ mode }) => {
  const env = loadEnv(mode, fileURLToPath(new URL(".", import.meta.url)), "");
  const port = Number(env.PORT || 3000);
  // index.html's <title> is %VITE_APP_TITLE%: .env has the project's name.
  process.env.VITE_APP_TITLE ??= env.VITE_APP_TITLE || "Web frontend";
  const proxy = { "/api": { target: env.API_UPSTREAM || "http://127.0.0.1:8000" } };
  return {
    plugins: [react(), health()],
    server: { host: "0.0.0.0", port, strictPort: true, proxy },
    preview: { host: "0.0.0.0", port, strictPort: true, proxy },
    test: {
      environment: "jsdom",
      setupFiles: ["./src/test/setup.ts"],
      restoreMocks: true,
      unstubGlobals: true,
      // UI tests type and click through jsdom: on a loaded CI runner (the suite runs
      // beside other services' tests) 5 s was seen to be too tight for one of them.
      testTimeout: 20_000,
    },
  };
});
