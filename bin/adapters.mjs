#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so `npx adapters` works from a checkout without a build step.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// The CLI names itself in hints as the user started it: `npx adapters` under npx, else
// `adapters`. npx sets npm_lifecycle_script to the bin it runs ("'adapters'"); checking it keeps
// a program started under another npx command (`npx vitest`) from passing for one.
const underNpx = process.env.npm_command === 'exec' && process.env.npm_lifecycle_script?.replace(/'/g, '').split(' ')[0] === 'adapters';
const command = underNpx ? 'npx adapters' : 'adapters';
// tsx and the checkout's tsconfig (for its import paths) are found from this file, not from the
// working directory, so the command also works outside the checkout.
const result = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), path.join(root, 'cli', 'main.ts'), ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, ADAPTERS_COMMAND: command, TSX_TSCONFIG_PATH: path.join(root, 'tsconfig.json') },
});
process.exit(result.status ?? 1);
