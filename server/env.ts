import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

/**
 * Server configuration, read once from the environment and validated.
 * Handlers import `env` and never read `process.env` themselves.
 */
function emptyAsUnset(value: unknown): unknown {
  return value === '' ? undefined : value;
}

const schema = z.object({
  // postgres://… for a real server; unset means the embedded PGlite database.
  DATABASE_URL: z.string().url().optional(),
  // Folder of the embedded PGlite database, used only without DATABASE_URL.
  PGLITE_DIR: z.string().default('.data/pglite'),
  // Connections per process to DATABASE_URL. Each serverless instance serves one request at a
  // time, so 1 or 2 suffice there; the server needs instances × this many connections.
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(50).default(5),
  // Apply pending migrations when the database is first opened. Serverless stages set false and
  // run migrations once per deployment instead, so that cold starts never race on them.
  DATABASE_MIGRATE_ON_START: z.enum(['true', 'false']).default('true').transform((value) => value === 'true'),

  S3_ENDPOINT: z.string().url({ message: 'S3_ENDPOINT must be a URL such as http://127.0.0.1:8333' }),
  S3_REGION: z.string().default('us-east-1'),
  S3_BUCKET: z.string().min(3),
  // Static S3 keys. Leave both unset to use the AWS SDK's default credentials (an IAM role on
  // Lambda or EC2). Presigned URLs then expire no later than the role's session.
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  // Presigned URLs stay valid this long, in seconds.
  S3_PRESIGN_SECONDS: z.coerce.number().int().min(60).max(7 * 24 * 3600).default(3600),

  // Public base URL of the app. Session cookies are Secure exactly when it is https.
  NEXTAUTH_URL: z.string().url().optional(),
  NEXTAUTH_SECRET: z.string().min(16, { message: 'NEXTAUTH_SECRET must be at least 16 characters; generate one with `openssl rand -hex 32`' }),
  // GitHub OAuth app credentials. With both set, the sign-in page offers "Sign in with GitHub";
  // the app's callback URL is {NEXTAUTH_URL}/api/auth/callback/github. Empty counts as unset.
  GITHUB_ID: z.preprocess(emptyAsUnset, z.string().min(1).optional()),
  GITHUB_SECRET: z.preprocess(emptyAsUnset, z.string().min(1).optional()),
  // A runner that misses heartbeats for this long loses its job back to the queue, in seconds.
  JOB_LEASE_SECONDS: z.coerce.number().int().min(5).max(3600).default(60),
  JOB_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(3),
  // Largest data set the server validates synchronously, in bytes.
  DATASET_MAX_BYTES: z.coerce.number().int().min(1024).default(64 * 1024 * 1024),
  // Largest data set version that cleaning, splitting and mixing handle in one request, in bytes.
  // About 2 MiB fits the web tier's default 30 s time limit (see docs/datasets.md).
  DATASET_DERIVE_MAX_BYTES: z.coerce.number().int().min(1024).default(2 * 1024 * 1024),
  // Budget of one finalize call for the sha256 check of uploaded files: it stops after this many
  // seconds or bytes, whichever comes first, and the client calls again until the check is done.
  // Keep the time well under the request timeout (30 s on the Lambda stages).
  UPLOAD_VERIFY_SECONDS: z.coerce.number().positive().max(600).default(8),
  UPLOAD_VERIFY_BYTES: z.coerce.number().int().min(64 * 1024).default(512 * 1024 * 1024),
  // A deleted adapter can be restored for this many days; then its files are removed.
  DELETED_ADAPTER_RETENTION_DAYS: z.coerce.number().min(0).max(3650).default(30),
  // When set, GET /api/metrics also accepts "Authorization: Bearer <METRICS_TOKEN>" (runner tokens always work).
  METRICS_TOKEN: z.string().min(16, { message: 'METRICS_TOKEN must be at least 16 characters' }).optional(),
  // Rate limits per fixed window of RATE_LIMIT_WINDOW_SECONDS, counted in the database so that
  // every app instance shares them. Writes are all mutations except the runner's; expensive
  // reads are the procedures marked so (search, facets, leaderboards). 0 turns a limit off.
  RATE_LIMIT_WINDOW_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
  // Per API token, or per signed-in user for browser sessions, or per address for anonymous callers.
  RATE_LIMIT_WRITES: z.coerce.number().int().min(0).default(120),
  RATE_LIMIT_EXPENSIVE_READS: z.coerce.number().int().min(0).default(600),
  // Per client address, whoever is signed in: many callers may share one address.
  RATE_LIMIT_ADDRESS_WRITES: z.coerce.number().int().min(0).default(600),
  RATE_LIMIT_ADDRESS_EXPENSIVE_READS: z.coerce.number().int().min(0).default(3000),
  // Webhooks to private, loopback, link-local or metadata addresses are rejected unless this is 1
  // (tests and local installs whose receiver runs on the same machine or network).
  WEBHOOK_ALLOW_PRIVATE: z.enum(['0', '1']).default('0').transform((value) => value === '1'),
  // Tries per webhook delivery; the wait before try n+1 is WEBHOOK_RETRY_BASE_SECONDS × 2^(n-1).
  WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(6),
  WEBHOOK_RETRY_BASE_SECONDS: z.coerce.number().min(0.05).max(3600).default(10),
  // A try without a response from the receiver within this many seconds counts as failed.
  WEBHOOK_TIMEOUT_SECONDS: z.coerce.number().min(1).max(60).default(10),
  // Playground (POST /api/playground): folder with one shared-base ONNX graph per base model, in a
  // subfolder named by the base model id (written by `python -m worker export-onnx --lora-inputs`).
  PLAYGROUND_GRAPH_DIR: z.string().default('.data/playground'),
  // Download folder for graphs stored with a base model in S3 (its onnx/ files), filled on first
  // use. The default is under the system's temporary folder, the only writable one on Lambda.
  PLAYGROUND_CACHE_DIR: z.string().default(path.join(os.tmpdir(), 'adapters-playground')),
  // Base models with more parameters are rejected, because CPU generation in a request must stay quick.
  PLAYGROUND_MAX_PARAMETERS: z.coerce.number().int().min(1).default(500_000_000),
  // Upper bound of the "max tokens" a request may ask for, per column.
  PLAYGROUND_MAX_TOKENS: z.coerce.number().int().min(1).max(4096).default(256),
  // Prompts longer than this many tokens (after the chat template) are rejected.
  PLAYGROUND_MAX_PROMPT_TOKENS: z.coerce.number().int().min(1).max(32768).default(1024),
  // Memory cap of the cache of padded adapter tensors, in bytes (per app process).
  PLAYGROUND_ADAPTER_CACHE_BYTES: z.coerce.number().int().min(0).default(512 * 1024 * 1024),
  // Playground requests per signed-in user per RATE_LIMIT_WINDOW_SECONDS; 0 turns the limit off.
  RATE_LIMIT_PLAYGROUND: z.coerce.number().int().min(0).default(20),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  NODE_ENV: z.string().optional(),
}).superRefine((env, context) => {
  if ((env.S3_ACCESS_KEY_ID === undefined) !== (env.S3_SECRET_ACCESS_KEY === undefined)) {
    context.addIssue({ code: 'custom', path: ['S3_ACCESS_KEY_ID'], message: 'set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither to use the AWS default credentials' });
  }
  if ((env.GITHUB_ID === undefined) !== (env.GITHUB_SECRET === undefined)) {
    context.addIssue({ code: 'custom', path: [env.GITHUB_ID ? 'GITHUB_SECRET' : 'GITHUB_ID'], message: 'set both GITHUB_ID and GITHUB_SECRET to offer GitHub sign-in, or neither' });
  }
  if (env.NODE_ENV !== 'production') return;
  if (!env.NEXTAUTH_URL) {
    context.addIssue({ code: 'custom', path: ['NEXTAUTH_URL'], message: 'NEXTAUTH_URL is required in production: the public base URL, such as https://adapters.example.com' });
  } else if (!isSecureOrLoopback(new URL(env.NEXTAUTH_URL))) {
    context.addIssue({ code: 'custom', path: ['NEXTAUTH_URL'], message: `NEXTAUTH_URL must use https in production (got ${new URL(env.NEXTAUTH_URL).origin}); plain http is allowed only for loopback hosts` });
  }
});

// Loopback hosts may use plain http in production builds, so that local runs and tests work.
function isSecureOrLoopback(url: URL): boolean {
  if (url.protocol === 'https:') return true;
  return url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(url.hostname);
}

export type Env = z.infer<typeof schema>;

/** Validates `source` (process.env by default); throws one message that lists every invalid setting. */
export function parseEnv(source: Record<string, string | undefined> = process.env): Env {
  const parsed = schema.safeParse(source);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`invalid server configuration:\n${lines.join('\n')}\nSee .env.example for every setting.`);
  }
  return parsed.data;
}

let cached: Env | undefined;

/** Returns the validated configuration, parsing the environment on first use. */
export function getEnv(): Env {
  cached ??= parseEnv();
  return cached;
}
