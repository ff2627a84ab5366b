// Copies the pinned onnxruntime-web build the page needs (WASM, and WebGPU where the browser has it)
// from node_modules into static/vendor/ort, which brushwork serve serves and git ignores. Run by `npm ci`.
import { copyFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..", "..");
const dist = join(root, "node_modules", "onnxruntime-web", "dist");
const out = join(here, "static", "vendor", "ort");
const files = [
  "ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm",
  "ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm",
];
if (!existsSync(dist)) {
  console.error(`onnxruntime-web is not installed in ${dist}: run npm ci in the repository root`);
  process.exit(1);
}
mkdirSync(out, { recursive: true });
for (const name of files) copyFileSync(join(dist, name), join(out, name));
console.log(`brushwork: onnxruntime-web copied to ${out} (${files.length} files)`);
