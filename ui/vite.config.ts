import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// Built into static files that the Tauri app embeds (src-tauri/tauri.conf.json: frontendDist).
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: { target: "safari15", outDir: "dist", emptyOutDir: true },
  // CSS is read by the tests as text (the contrast test reads the tokens from app.css?raw).
  test: { include: ["src/**/*.test.ts"], css: true },
});
