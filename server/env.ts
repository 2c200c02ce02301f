import { z } from 'zod';

/**
 * Server configuration, read once from the environment and validated.
 * Handlers import `env` and never read `process.env` themselves.
 */
const schema = z.object({
  // postgres://… for a real server; unset means the embedded PGlite database.
  DATABASE_URL: z.string().url().optional(),
  // Folder of the embedded PGlite database, used only without DATABASE_URL.
  PGLITE_DIR: z.string().default('.data/pglite'),

  S3_ENDPOINT: z.string().url({ message: 'S3_ENDPOINT must be a URL such as http://127.0.0.1:8333' }),
  S3_REGION: z.string().default('us-east-1'),
  S3_BUCKET: z.string().min(3),
  S3_ACCESS_KEY_ID: z.string().min(1),
  S3_SECRET_ACCESS_KEY: z.string().min(1),
  // Presigned URLs stay valid this long, in seconds.
  S3_PRESIGN_SECONDS: z.coerce.number().int().min(60).max(7 * 24 * 3600).default(3600),

  NEXTAUTH_SECRET: z.string().min(16, { message: 'NEXTAUTH_SECRET must be at least 16 characters; generate one with `openssl rand -hex 32`' }),
  // A runner that misses heartbeats for this long loses its job back to the queue, in seconds.
  JOB_LEASE_SECONDS: z.coerce.number().int().min(5).max(3600).default(60),
  JOB_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(3),
  // Largest data set the server validates synchronously, in bytes.
  DATASET_MAX_BYTES: z.coerce.number().int().min(1024).default(64 * 1024 * 1024),
  // A deleted adapter can be restored for this many days; then its files are removed.
  DELETED_ADAPTER_RETENTION_DAYS: z.coerce.number().min(0).max(3650).default(30),
  // When set, GET /api/metrics requires "Authorization: Bearer <METRICS_TOKEN>".
  METRICS_TOKEN: z.string().min(16, { message: 'METRICS_TOKEN must be at least 16 characters' }).optional(),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

export type Env = z.infer<typeof schema>;

function loadEnv(): Env {
  const parsed = schema.safeParse(process.env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`invalid server configuration:\n${lines.join('\n')}\nSee .env.example for every setting.`);
  }
  return parsed.data;
}

let cached: Env | undefined;

/** Returns the validated configuration, parsing the environment on first use. */
export function getEnv(): Env {
  cached ??= loadEnv();
  return cached;
}
