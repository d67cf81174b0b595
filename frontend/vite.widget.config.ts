// The embeddable balance widget: one self-contained ES module at a stable URL
// (/balance-widget.js), built after the console into the same folder.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  publicDir: false,
  build: {
    outDir: here("../app/static/console"),
    emptyOutDir: false,
    lib: {
      entry: here("src/widget/balance-widget.ts"),
      formats: ["es"],
      fileName: () => "balance-widget.js",
    },
  },
});
