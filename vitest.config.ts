import path from 'node:path';
import { defineConfig } from 'vitest/config';

const alias = { '@adapters/client': path.join(import.meta.dirname, 'packages/client/index.ts'), '@': import.meta.dirname };

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      { resolve: { alias }, test: { name: 'unit', include: ['tests/unit/**/*.test.ts'] } },
      // CDK synthesis of the deployment stacks; offline, no AWS account needed.
      { resolve: { alias }, test: { name: 'infra', include: ['tests/infra/**/*.test.ts'], testTimeout: 60_000, hookTimeout: 60_000 } },
      {
        resolve: { alias },
        test: {
          name: 'integration',
          include: ['tests/integration/**/*.test.ts', 'tests/e2e/**/*.test.ts'],
          // Starts the app against the Postgres server and SeaweedFS that scripts/test.sh brought up.
          globalSetup: ['tests/setup/global.ts'],
          // The files share one app, one job queue and one database, so they run one at a time.
          fileParallelism: false,
          testTimeout: 240_000,
          hookTimeout: 240_000,
        },
      },
    ],
  },
});
