import type { Plugin } from "vite";
import { gzipSync } from "node:zlib";

// Prints what a first visit downloads (the entry chunk and what it imports statically) and
// the total, so a change that bloats the bundle shows in every build's output.
export function bundleReport(): Plugin {
  return {
    name: "gristmill-bundle-report",
    apply: "build",
    generateBundle(_options, bundle) {
      let total = 0;
      let totalGz = 0;
      let initial = 0;
      let initialGz = 0;
      const entries = new Set<string>();
      for (const chunk of Object.values(bundle)) {
        if (chunk.type === "chunk" && chunk.isEntry) {
          entries.add(chunk.fileName);
          for (const name of chunk.imports) entries.add(name);
        }
      }
      for (const chunk of Object.values(bundle)) {
        const code = chunk.type === "chunk" ? chunk.code : chunk.source;
        const size = typeof code === "string" ? Buffer.byteLength(code) : code.byteLength;
        const gz = gzipSync(code).byteLength;
        total += size;
        totalGz += gz;
        if (entries.has(chunk.fileName) || chunk.fileName.endsWith(".css")) {
          initial += size;
          initialGz += gz;
        }
      }
      const kb = (n: number) => `${(n / 1024).toFixed(1)} kB`;
      console.log(
        `\nbundle: first load ${kb(initial)} (${kb(initialGz)} gzip); ` +
          `all chunks ${kb(total)} (${kb(totalGz)} gzip); language packs load on demand`,
      );
    },
  };
}
