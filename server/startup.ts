import { loadCloudSecrets } from './cloud-secrets';
import { getEnv } from './env';
import { logger } from './logger';
import { startWebhookDispatcher } from './services/webhooks';

/**
 * Checks that browsers may reach `s3Endpoint`: the Content-Security-Policy is fixed at build
 * time (next.config.js) with the build's S3 origin, which Next.js inlines as BUILD_S3_ORIGIN.
 * `builtOrigin` is undefined outside a Next.js build, where there is no policy to compare.
 */
export function checkS3OriginAllowed(s3Endpoint: string, builtOrigin: string | undefined): void {
  if (builtOrigin === undefined) return;
  const origin = new URL(s3Endpoint).origin;
  if (builtOrigin === '') {
    throw new Error(`this build's Content-Security-Policy allows no S3 origin because S3_ENDPOINT was unset at build time; rebuild with S3_ENDPOINT=${origin}`);
  }
  if (builtOrigin !== origin) {
    throw new Error(`S3_ENDPOINT's origin ${origin} differs from ${builtOrigin}, the one this build's Content-Security-Policy allows, so browser uploads would be blocked; rebuild with S3_ENDPOINT=${origin}`);
  }
}

/**
 * Prepares the server before it takes requests: loads settings from Secrets Manager where the
 * environment names secrets, validates every setting, and stops the start with a message that
 * lists each invalid one.
 */
export async function startServer(): Promise<void> {
  const loaded = await loadCloudSecrets();
  const env = getEnv();
  checkS3OriginAllowed(env.S3_ENDPOINT, process.env.BUILD_S3_ORIGIN);
  logger.info({
    secretsLoaded: loaded,
    database: env.DATABASE_URL ? 'postgres' : 'pglite',
    migrateOnStart: env.DATABASE_MIGRATE_ON_START,
    s3Endpoint: env.S3_ENDPOINT,
    s3Bucket: env.S3_BUCKET,
    s3Credentials: env.S3_ACCESS_KEY_ID ? 'static keys' : 'AWS default chain',
  }, 'configuration valid');
  startWebhookDispatcher();
}
