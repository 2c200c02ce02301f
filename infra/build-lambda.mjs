// Builds the Next.js app for Lambda (.open-next/) with OpenNext's own build steps, in the order
// of `open-next build` in @opennextjs/aws 4.1.16 (dist/build.js), minus the image optimization
// function. Usage: node infra/build-lambda.mjs (run it from the repository root).
//
// Why not `open-next build`: it always bundles the image optimization function, and with
// Next.js 16.5 that bundle requires @next/safe-image-optimization-wasm32 and two other optional
// packages that npm does not have, so esbuild fails after the server function is written. The
// app uses no next/image and sets `images.unoptimized`, and the stack deploys no image function.
// @opennextjs/cloudflare composes its build from the same exported modules.
import fs from 'node:fs';
import path from 'node:path';
import url from 'node:url';
import { buildNextjsApp, setStandaloneBuildMode } from '@opennextjs/aws/build/buildNextApp.js';
import { compileCache } from '@opennextjs/aws/build/compileCache.js';
import { compileOpenNextConfig } from '@opennextjs/aws/build/compileConfig.js';
import { compileTagCacheProvider } from '@opennextjs/aws/build/compileTagCacheProvider.js';
import { createCacheAssets, createStaticAssets } from '@opennextjs/aws/build/createAssets.js';
import { createMiddleware } from '@opennextjs/aws/build/createMiddleware.js';
import { createRevalidationBundle } from '@opennextjs/aws/build/createRevalidationBundle.js';
import { createServerBundle } from '@opennextjs/aws/build/createServerBundle.js';
import { createWarmerBundle } from '@opennextjs/aws/build/createWarmerBundle.js';
import { generateOutput } from '@opennextjs/aws/build/generateOutput.js';
import * as buildHelper from '@opennextjs/aws/build/helper.js';
import { patchOriginalNextConfig } from '@opennextjs/aws/build/patch/patches/index.js';
import { printHeader } from '@opennextjs/aws/build/utils.js';
import logger from '@opennextjs/aws/logger.js';

const root = path.resolve(import.meta.dirname, '..');
if (process.cwd() !== root) {
  console.error(`run this script from the repository root (${root}), not ${process.cwd()}`);
  process.exit(1);
}

// OpenNext finds its own adapters relative to its dist folder.
const openNextDistDir = path.dirname(url.fileURLToPath(import.meta.resolve('@opennextjs/aws/build.js')));
const { config, buildDir } = await compileOpenNextConfig(path.join(root, 'open-next.config.ts'), { nodeExternals: '' });
const options = buildHelper.normalizeOptions(config, openNextDistDir, buildDir);
logger.setLevel(options.debug ? 'debug' : 'info');
buildHelper.checkRunningInsideNextjsApp(options);
buildHelper.printNextjsVersion(options);
buildHelper.printOpenNextVersion(options);
buildHelper.checkNextVersionSupport(options.nextVersion, false);

printHeader('Building Next.js app');
setStandaloneBuildMode(options);
buildHelper.initOutputDir(options);
buildNextjsApp(options);

printHeader('Generating bundle');
await patchOriginalNextConfig(options);
compileCache(options);
await createMiddleware(options);
createStaticAssets(options);
if (config.dangerous?.disableIncrementalCache !== true) {
  const { useTagCache } = createCacheAssets(options);
  if (useTagCache) await compileTagCacheProvider(options);
}
await createServerBundle(options);
await createRevalidationBundle(options);
await createWarmerBundle(options);
await generateOutput(options);

// The output manifest always lists the image optimizer; drop its origin and route, so that
// deployment tools reading the manifest do not look for a function that was never built.
const manifestPath = path.join(options.outputDir, 'open-next.output.json');
const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
delete manifest.origins.imageOptimizer;
manifest.behaviors = manifest.behaviors.filter((behavior) => behavior.origin !== 'imageOptimizer');
fs.writeFileSync(manifestPath, JSON.stringify(manifest));

logger.info(`OpenNext build complete (no image optimization function): ${path.relative(root, options.outputDir)}`);
