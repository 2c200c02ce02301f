import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

/**
 * Settings of one deployment stage, read from infra/stages/<stage>.json and validated before
 * anything is synthesized. Adding a stage adds a JSON file and changes no code.
 */

const hostname = z.string().regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/, {
  message: 'must be a lower-case DNS name such as adapters.example.com',
});

const auroraSchema = z.object({
  engine: z.literal('aurora-serverless-v2'),
  // Aurora capacity units (1 ACU is about 2 GiB of memory). 0 lets the cluster pause when
  // nothing is connected, and the queue metrics poll connects every queueMetricsIntervalMinutes.
  minCapacityAcu: z.number().min(0).max(256),
  maxCapacityAcu: z.number().min(1).max(256),
  // Minutes without connections before a cluster with minCapacityAcu 0 pauses (AWS allows 5 to 1440).
  autoPauseMinutes: z.number().int().min(5).max(1440).default(10),
  backupRetentionDays: z.number().int().min(1).max(35).default(7),
}).refine((db) => db.minCapacityAcu <= db.maxCapacityAcu, { message: 'minCapacityAcu must not exceed maxCapacityAcu', path: ['minCapacityAcu'] });

const neonSchema = z.object({
  engine: z.literal('neon'),
  // Name of a Secrets Manager secret, created by hand before the first deploy, whose value is
  // the Neon connection string (postgres://…?sslmode=require).
  connectionSecretName: z.string().min(1),
});

const stageSchema = z.object({
  // At most 12 characters, so that the artifacts bucket's name stays within S3's 63.
  stage: z.string().regex(/^[a-z][a-z0-9-]{1,11}$/, { message: 'must be 2 to 12 lower-case letters, digits or dashes, starting with a letter' }),
  account: z.string().regex(/^\d{12}$/, { message: 'must be a 12-digit AWS account id' }).optional(),
  region: z.string().regex(/^[a-z]{2}(-gov)?-[a-z]+-\d$/, { message: 'must be an AWS region such as eu-west-1' }),

  // Public name of the app. It is fixed per stage because the app, the bucket's CORS rule and the
  // runners all need it before CloudFront assigns its own domain name.
  domainName: hostname,
  // ACM certificate for domainName. CloudFront accepts only certificates in us-east-1.
  certificateArn: z.string().regex(/^arn:aws:acm:us-east-1:\d{12}:certificate\/[0-9a-f-]{36}$/, {
    message: 'must be an ACM certificate ARN in us-east-1 (CloudFront only uses certificates from that region)',
  }),
  // Optional Route 53 zone in which the stack creates the alias record for domainName. Without
  // it, point a CNAME at the distribution by hand.
  hostedZone: z.object({ id: z.string().regex(/^Z[A-Z0-9]+$/), name: hostname }).optional(),

  web: z.object({
    memoryMb: z.number().int().min(512).max(10240).default(2048),
    // CloudFront waits at most 60 s for an origin without a quota increase. Long work belongs
    // on the job queue, not in a request.
    timeoutSeconds: z.number().int().min(5).max(60).default(30),
    // Caps concurrent instances, and with it database connections (reservedConcurrency × databasePoolMax).
    reservedConcurrency: z.number().int().min(1).max(1000).optional(),
    databasePoolMax: z.number().int().min(1).max(10).default(2),
    logRetentionDays: z.union([z.literal(7), z.literal(14), z.literal(30), z.literal(90), z.literal(365)]).default(30),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  }),

  artifacts: z.object({
    // Parts of multipart uploads that were never completed or aborted are deleted after this many days.
    abortIncompleteMultipartUploadDays: z.number().int().min(1).max(30).default(2),
    // Objects tagged as deleted (see DELETED_OBJECT_TAG) expire after this many days.
    deletedObjectExpirationDays: z.number().int().min(1).max(3650).default(7),
  }).default({ abortIncompleteMultipartUploadDays: 2, deletedObjectExpirationDays: 7 }),

  database: z.discriminatedUnion('engine', [auroraSchema, neonSchema]),

  runners: z.object({
    // GPU instance types, most preferred first. The group falls back to the next when one has no capacity.
    instanceTypes: z.array(z.string().regex(/^(g|p)\d[a-z0-9-]*\.[a-z0-9]+$/, { message: 'must be a GPU instance type such as g6.xlarge' })).min(1),
    minInstances: z.number().int().min(0).default(0),
    // 0 keeps the fleet empty, for teams whose runners run on Kubernetes instead.
    maxInstances: z.number().int().min(0).max(100),
    spot: z.boolean().default(false),
    // Tag of the runner image in the stack's ECR repository (built from infra/runner/Dockerfile).
    imageTag: z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, { message: 'must be a Docker image tag' }),
    rootVolumeGb: z.number().int().min(100).max(2000).default(200),
    // Minutes with no queued or running job before the fleet scales to minInstances.
    scaleInIdleMinutes: z.number().int().min(5).max(120).default(15),
    // How often the queue depth is read from the database and published as a metric.
    queueMetricsIntervalMinutes: z.number().int().min(1).max(60).default(1),
  }).refine((runners) => runners.minInstances <= runners.maxInstances, { message: 'minInstances must not exceed maxInstances', path: ['minInstances'] }),

  // Keep the artifacts bucket and a final database snapshot when the stack is deleted.
  retainData: z.boolean(),
}).superRefine((config, context) => {
  const database = config.database;
  // A cluster pauses only after autoPauseMinutes without connections, and the queue poll connects
  // every queueMetricsIntervalMinutes, so a shorter poll interval keeps it awake for good.
  if (database.engine === 'aurora-serverless-v2' && database.minCapacityAcu === 0 && config.runners.queueMetricsIntervalMinutes <= database.autoPauseMinutes) {
    context.addIssue({
      code: 'custom',
      path: ['runners', 'queueMetricsIntervalMinutes'],
      message: `must exceed database.autoPauseMinutes (${database.autoPauseMinutes}) when minCapacityAcu is 0, or the queue poll keeps the cluster from ever pausing; raise it or set minCapacityAcu to 0.5`,
    });
  }
});

export type StageConfig = z.infer<typeof stageSchema>;
export type AuroraConfig = z.infer<typeof auroraSchema>;

/** Validates a parsed stage file; `source` names it in error messages. */
export function parseStageConfig(raw: unknown, source: string): StageConfig {
  const parsed = stageSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.') || '(root)'}: ${issue.message}`);
    throw new Error(`invalid stage configuration in ${source}:\n${lines.join('\n')}`);
  }
  return parsed.data;
}

/** Reads and validates infra/stages/<stage>.json (or the file in `stagesDir`). */
export function loadStageConfig(stage: string, stagesDir: string): StageConfig {
  const file = path.join(stagesDir, `${stage}.json`);
  if (!fs.existsSync(file)) {
    const known = fs.readdirSync(stagesDir).filter((name) => name.endsWith('.json')).map((name) => name.slice(0, -5));
    throw new Error(`unknown stage "${stage}": ${file} does not exist (stages: ${known.join(', ')})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  const config = parseStageConfig(raw, file);
  if (config.stage !== stage) throw new Error(`${file} declares stage "${config.stage}"; it must be "${stage}"`);
  return config;
}
