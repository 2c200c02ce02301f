import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Checks for the build outputs the stack deploys, so that a missing build step fails at synth
 * with the command to run rather than at deploy time.
 */

/** Files of the OpenNext output (`npm run build:lambda`, @opennextjs/aws 4) that the stack reads. */
export const OPEN_NEXT_REQUIRED = ['server-functions/default/index.mjs', 'assets', 'cache'] as const;

/** Files of the operations function bundle (`npm run build:ops`) that the stack reads. */
export const OPS_REQUIRED = ['index.mjs', 'migrations/meta/_journal.json'] as const;

export function checkBuildOutput(dir: string, required: readonly string[], buildCommand: string): void {
  const missing = required.filter((entry) => !fs.existsSync(path.join(dir, entry)));
  if (missing.length > 0) {
    throw new Error(`${dir} lacks ${missing.join(', ')}; run \`${buildCommand}\` first or pass the output folder's path`);
  }
}

/** Hashes every file under `dir` (names and bytes), so that a resource can change exactly when the folder does. */
export function hashFolder(dir: string): string {
  const hash = createHash('sha256');
  const walk = (folder: string) => {
    for (const entry of fs.readdirSync(folder, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(folder, entry.name);
      if (entry.isDirectory()) {
        walk(full);
      } else {
        hash.update(path.relative(dir, full));
        hash.update(fs.readFileSync(full));
      }
    }
  };
  walk(dir);
  return hash.digest('hex');
}
