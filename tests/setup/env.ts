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
export const TINY_BASE_ID = 'tiny-llama';
export const ADMIN = { email: 'admin@example.com', password: 'admin-password', namespace: 'admin' };

/** Reads the admin API token that the global setup wrote to a file (setup runs in another process). */
export async function adminToken(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  return (await readFile('.test-data/admin-token', 'utf8')).trim();
}
