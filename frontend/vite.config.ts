// The console (Preact) and the GraphQL IDE (GraphiQL on React) in one build, served by
// the Starlette app from app/static/console/. JSX is compiled for Preact only; the IDE
// uses React.createElement, so the two never share a JSX runtime.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  // GraphiQL 5's Monaco workers (graphql, json, editor) are split into chunks: ES workers.
  worker: { format: "es" },
  build: {
    outDir: here("../app/static/console"),
    emptyOutDir: true,
    // GraphiQL (Monaco, React, graphql-js) is large; it loads only at /graphql.
    chunkSizeWarningLimit: 8000,
    rollupOptions: {
      // Radix (inside GraphiQL) marks modules "use client"; meaningless in a bundle.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
      input: { console: here("index.html"), ide: here("ide.html") },
    },
  },
});
