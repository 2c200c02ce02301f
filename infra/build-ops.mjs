// Bundles the operations function (infra/ops/handler.ts) with esbuild into one ES module and
// copies the SQL migrations beside it. Usage: node infra/build-ops.mjs [OUT_DIR]
// (default .infra-build/ops); the CDK app reads that folder.
import { cp, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const out = path.resolve(process.argv[2] ?? path.join(root, '.infra-build', 'ops'));

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: [path.join(root, 'infra', 'ops', 'handler.ts')],
  outfile: path.join(out, 'index.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  tsconfig: path.join(root, 'tsconfig.json'),
  // pg loads pg-native only when asked to; the bundle uses the pure JavaScript client.
  external: ['pg-native'],
  // Some bundled CommonJS packages call require() on Node built-ins.
  banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  logLevel: 'warning',
});
await cp(path.join(root, 'drizzle', 'migrations'), path.join(out, 'migrations'), { recursive: true });
console.log(`operations function bundled in ${path.relative(root, out)}`);
