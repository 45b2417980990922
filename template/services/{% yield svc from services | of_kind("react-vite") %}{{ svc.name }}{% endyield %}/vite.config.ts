import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The dev server listens on $PORT and proxies /api to the API service, like
// the production nginx does.
export default defineConfig({
  plugins: [react()],
  server: {
    host: "0.0.0.0",
    port: Number(process.env.PORT ?? 3000),
    strictPort: true,
    proxy: {
      "/api": { target: process.env.API_UPSTREAM ?? "http://localhost:8000", changeOrigin: true },
    },
  },
});
