// Validate a glTF/GLB file with the Khronos glTF validator and print its JSON report on stdout.
// Usage: node tools/gltf_validate.mjs path/to/scene.glb
// Exit status: 0 when the report has no errors, 1 when it has errors, 2 on usage or I/O failure.
import { readFile } from "node:fs/promises";
import path from "node:path";
import validator from "gltf-validator";

const file = process.argv[2];
if (!file) {
  console.error("usage: node tools/gltf_validate.mjs <file.glb|file.gltf>");
  process.exit(2);
}

try {
  const bytes = new Uint8Array(await readFile(file));
  const report = await validator.validateBytes(bytes, {
    uri: path.basename(file),
    maxIssues: 0,
    writeTimestamp: false,
    externalResourceFunction: () => Promise.reject(new Error("external resources are not allowed")),
  });
  process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  process.exit(report.issues.numErrors > 0 ? 1 : 0);
} catch (err) {
  console.error(`gltf-validator failed: ${err}`);
  process.exit(2);
}
