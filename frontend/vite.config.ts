import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";
import { bundleReport } from "./vite-plugins/bundle-report.ts";

// The API runs on the same origin in production (`gristmill up` serves dist/); in `npm run dev`
// Vite forwards /api to a running Gristmill (GRISTMILL_URL, default http://localhost:8000).
export default defineConfig({
  plugins: [svelte(), bundleReport()],
  build: {
    outDir: "dist",
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 800,
  },
  server: {
    proxy: { "/api": process.env.GRISTMILL_URL ?? "http://localhost:8000" },
  },
});
