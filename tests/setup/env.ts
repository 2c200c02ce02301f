/** Settings shared by the test harness and the processes it starts; scripts/test.sh exports the same values. */
export const testEnv = {
  APP_PORT: Number(process.env.TEST_APP_PORT ?? 3100),
  DATABASE_URL: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/adapters_test',
  S3_ENDPOINT: process.env.S3_ENDPOINT ?? 'http://127.0.0.1:8433',
  S3_BUCKET: process.env.S3_BUCKET ?? 'adapters-test',
  S3_ACCESS_KEY_ID: process.env.S3_ACCESS_KEY_ID ?? 'test-access-key',
  S3_SECRET_ACCESS_KEY: process.env.S3_SECRET_ACCESS_KEY ?? 'test-secret-key',
  TINY_MODEL_DIR: process.env.TINY_MODEL_DIR ?? '.test-data/tiny-llama',
};

export const appUrl = `http://127.0.0.1:${testEnv.APP_PORT}`;

// Bytes the test app hashes per finalize call (UPLOAD_VERIFY_BYTES). Small, so that files of a
// few MiB already take several calls, as files of gigabytes do with the default budget.
export const TEST_VERIFY_BYTES = 4 * 1024 * 1024;

/** Returns the settings every test app process needs: the test database, S3 and auth secret. */
export function appSettings(url: string): Record<string, string> {
  return {
    DATABASE_URL: testEnv.DATABASE_URL,
    S3_ENDPOINT: testEnv.S3_ENDPOINT,
    S3_BUCKET: testEnv.S3_BUCKET,
    S3_ACCESS_KEY_ID: testEnv.S3_ACCESS_KEY_ID,
    S3_SECRET_ACCESS_KEY: testEnv.S3_SECRET_ACCESS_KEY,
    NEXTAUTH_SECRET: 'test-secret-for-integration-tests-only',
    NEXTAUTH_URL: url,
    // Every test calls from 127.0.0.1, and some send hundreds of writes a minute with one
    // token; rate-limit.test.ts starts its own app with small limits.
    RATE_LIMIT_WRITES: '100000',
    RATE_LIMIT_EXPENSIVE_READS: '100000',
    RATE_LIMIT_ADDRESS_WRITES: '100000',
    RATE_LIMIT_ADDRESS_EXPENSIVE_READS: '100000',
  };
}
export const APP_LOG = '.test-data/app.log';
// The app's user when the tests run as root: nobody/nogroup on Debian.
export const APP_USER = { uid: 65534, gid: 65534 };

/** Returns the log lines that report a denied or failed file write (EACCES, EPERM, EROFS). */
export function writeErrors(log: string): string[] {
  return log.split('\n').filter((line) => /\b(EACCES|EPERM|EROFS)\b/.test(line));
}

export const TINY_BASE_ID = 'tiny-llama';
export const ADMIN = { email: 'admin@example.com', password: 'admin-password', namespace: 'admin' };

/** Reads the admin API token that the global setup wrote to a file (setup runs in another process). */
export async function adminToken(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  return (await readFile('.test-data/admin-token', 'utf8')).trim();
}
