import { sql } from 'drizzle-orm';
import {
  bigint, bigserial, boolean, customType, doublePrecision, index, integer, jsonb, pgTable, primaryKey, serial, text, timestamp, uniqueIndex, uuid,
} from 'drizzle-orm/pg-core';

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();

/** Postgres full-text document; drizzle reads it as its text form. */
const tsvector = customType<{ data: string }>({ dataType: () => 'tsvector' });

/** A user's or a team's namespace: adapters are named `namespace/name`. */
export const namespaces = pgTable('namespaces', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull().unique(),
  kind: text('kind', { enum: ['user', 'team'] }).notNull(),
  createdAt: createdAt(),
});

export const users = pgTable('users', {
  id: uuid('id').primaryKey().defaultRandom(),
  email: text('email').notNull().unique(),
  namespaceId: uuid('namespace_id').notNull().references(() => namespaces.id),
  // argon2id, PHC string format; null for an account that signs in only through OAuth.
  passwordHash: text('password_hash'),
  isAdmin: boolean('is_admin').notNull().default(false),
  createdAt: createdAt(),
});

/**
 * OAuth identities linked to users (the next-auth adapter's `accounts` shape, reduced to what
 * sign-in needs). Provider access tokens are not stored, because the app never calls the
 * provider's API after sign-in.
 */
export const oauthAccounts = pgTable('oauth_accounts', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull().references(() => users.id),
  provider: text('provider').notNull(),
  // The provider's stable account id (GitHub's numeric user id, as text), never the login, which can change.
  providerAccountId: text('provider_account_id').notNull(),
  createdAt: createdAt(),
}, (t) => [uniqueIndex('oauth_accounts_provider_account').on(t.provider, t.providerAccountId), index('oauth_accounts_user').on(t.userId)]);

/** Personal API tokens; only the sha256 of the secret is stored. */
export const apiTokens = pgTable('api_tokens', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull().references(() => users.id),
  name: text('name').notNull(),
  prefix: text('prefix').notNull(),
  tokenHash: text('token_hash').notNull().unique(),
  scopes: text('scopes').array().notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true }),
  lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
  // Optional limits: the token acts only in this namespace, or only on these adapters.
  namespaceId: uuid('namespace_id').references(() => namespaces.id),
  adapterIds: uuid('adapter_ids').array(),
  createdAt: createdAt(),
});

export const teamRoles = ['owner', 'admin', 'member', 'viewer'] as const;
export type TeamRole = (typeof teamRoles)[number];

/** Members of team namespaces. A team always has at least one owner. */
export const teamMembers = pgTable('team_members', {
  namespaceId: uuid('namespace_id').notNull().references(() => namespaces.id),
  userId: uuid('user_id').notNull().references(() => users.id),
  role: text('role', { enum: teamRoles }).notNull(),
  createdAt: createdAt(),
}, (t) => [uniqueIndex('team_members_once').on(t.namespaceId, t.userId), index('team_members_user').on(t.userId)]);

/** Invitation links to a team: single use and expiring; only the sha256 of the secret is stored. */
export const teamInvitations = pgTable('team_invitations', {
  id: uuid('id').primaryKey().defaultRandom(),
  namespaceId: uuid('namespace_id').notNull().references(() => namespaces.id),
  role: text('role', { enum: teamRoles }).notNull(),
  tokenHash: text('token_hash').notNull().unique(),
  createdBy: uuid('created_by').notNull().references(() => users.id),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  acceptedBy: uuid('accepted_by').references(() => users.id),
  acceptedAt: timestamp('accepted_at', { withTimezone: true }),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
  createdAt: createdAt(),
});

/** Who did what: publishing, deletion, membership and token actions, per namespace. */
export const auditLog = pgTable('audit_log', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  namespaceId: uuid('namespace_id').references(() => namespaces.id),
  actorUserId: uuid('actor_user_id').references(() => users.id),
  action: text('action').notNull(),
  // What the action was on, readable: `team/adapter`, a token prefix, a member's email.
  target: text('target').notNull(),
  details: jsonb('details').$type<Record<string, unknown>>().notNull().default({}),
  createdAt: createdAt(),
}, (t) => [index('audit_log_namespace').on(t.namespaceId, t.id)]);

/**
 * Fixed-window request counters for rate limits, shared by every app instance through the
 * database. `key` names the limit and the client (token or address); `windowStart` is the
 * start of the window.
 */
export const rateLimitCounters = pgTable('rate_limit_counters', {
  key: text('key').notNull(),
  windowStart: timestamp('window_start', { withTimezone: true }).notNull(),
  count: integer('count').notNull(),
}, (t) => [uniqueIndex('rate_limit_counters_window').on(t.key, t.windowStart), index('rate_limit_counters_start').on(t.windowStart)]);

/** Runner tokens are a separate kind: they can only claim and run jobs. */
export const runnerTokens = pgTable('runner_tokens', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull(),
  prefix: text('prefix').notNull(),
  tokenHash: text('token_hash').notNull().unique(),
  createdBy: uuid('created_by').notNull().references(() => users.id),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
  createdAt: createdAt(),
});

export const runners = pgTable('runners', {
  id: uuid('id').primaryKey().defaultRandom(),
  tokenId: uuid('token_id').notNull().references(() => runnerTokens.id),
  name: text('name').notNull(),
  capabilities: jsonb('capabilities').notNull(),
  lastSeenAt: timestamp('last_seen_at', { withTimezone: true }).notNull().defaultNow(),
  createdAt: createdAt(),
});

/** Content-addressed objects in S3, stored once per sha256. */
export const blobs = pgTable('blobs', {
  sha256: text('sha256').primaryKey(),
  size: bigint('size', { mode: 'number' }).notNull(),
  s3Key: text('s3_key').notNull(),
  createdAt: createdAt(),
});

/**
 * One announced file of an upload session. Files larger than one part go to S3 as a multipart
 * upload at a key of their own (`key`, `multipartId`), with the sha256 of every part announced
 * up front (`partSize` bytes each, the last one shorter).
 */
export interface SessionFile {
  path: string;
  size: number;
  sha256: string;
  key?: string;
  multipartId?: string;
  partSize?: number;
  parts?: string[];
}

/**
 * Progress of the whole-file sha256 check of an upload, which finalize calls share because one
 * call hashes a bounded number of bytes. `path` is the file being hashed and `offset` the bytes
 * of it hashed so far. Before the end of the file, `sha256State` is the hasher's state after
 * those bytes (hash-wasm `save()`, base64). At the end it is null and `sha256` is the digest.
 * Every update increments `round`, and an update applies only if `round` is unchanged since the
 * caller read it, so concurrent calls cannot mix their states.
 */
export interface UploadVerification {
  round: number;
  path: string;
  offset: number;
  sha256State: string | null;
  sha256: string | null;
}

/** An upload in progress: the files a client announced and must put before finalizing. */
export const uploadSessions = pgTable('upload_sessions', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').references(() => users.id),
  purpose: text('purpose', { enum: ['adapter', 'dataset', 'base-model', 'benchmark', 'job-output'] }).notNull(),
  files: jsonb('files').$type<SessionFile[]>().notNull(),
  // Null until the first finalize call that leaves a file partly hashed.
  verification: jsonb('verification').$type<UploadVerification>(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  completedAt: timestamp('completed_at', { withTimezone: true }),
  createdAt: createdAt(),
});

export type ModuleShape = { kind: 'linear' | 'embedding'; shape: [number, number] };

export const baseModels = pgTable('base_models', {
  id: text('id').primaryKey(),
  displayName: text('display_name').notNull(),
  architecture: jsonb('architecture').$type<Record<string, unknown>>().notNull(),
  modules: jsonb('modules').$type<Record<string, ModuleShape>>().notNull(),
  parameterCount: bigint('parameter_count', { mode: 'number' }).notNull(),
  files: jsonb('files').$type<{ path: string; size: number; sha256: string }[]>().notNull(),
  source: jsonb('source').$type<Record<string, unknown>>().notNull(),
  createdAt: createdAt(),
});

export const adapterVisibilities = ['public', 'private'] as const;
export type AdapterVisibility = (typeof adapterVisibilities)[number];

export const adapters = pgTable('adapters', {
  id: uuid('id').primaryKey().defaultRandom(),
  namespaceId: uuid('namespace_id').notNull().references(() => namespaces.id),
  name: text('name').notNull(),
  description: text('description').notNull().default(''),
  domain: text('domain'),
  baseModelId: text('base_model_id').notNull().references(() => baseModels.id),
  // A private adapter, its versions, files and scores are NOT_FOUND to callers without a role
  // in its namespace (server/services/visibility.ts).
  visibility: text('visibility', { enum: adapterVisibilities }).notNull().default('public'),
  downloads: integer('downloads').notNull().default(0),
  likes: integer('likes').notNull().default(0),
  // A deprecated adapter stays downloadable; its page points at the replacement.
  deprecatedAt: timestamp('deprecated_at', { withTimezone: true }),
  deprecationMessage: text('deprecation_message'),
  replacedBy: text('replaced_by'),
  // Soft delete: hidden at once, purged with its files after the retention period.
  deletedAt: timestamp('deleted_at', { withTimezone: true }),
  // Set when the retention period ended and the files were removed; the row stays for lineage.
  purgedAt: timestamp('purged_at', { withTimezone: true }),
  // Listing facts copied from the newest version that is not yanked (null when every
  // version is yanked), so that search filters and sorts on indexed columns of one table.
  latestVersion: integer('latest_version'),
  rank: integer('rank'),
  peftType: text('peft_type'),
  taskType: text('task_type'),
  license: text('license'),
  tags: text('tags').array().notNull().default(sql`'{}'::text[]`),
  sizeBytes: bigint('size_bytes', { mode: 'number' }),
  bestScore: doublePrecision('best_score'),
  // Name, description, tags and the start of the model card, for full-text search.
  searchText: text('search_text').notNull().default(''),
  // searchText parsed once when it is written, so that matching and ranking never parse the
  // text again (parsing it per row made every text search scan and parse the whole table).
  searchVector: tsvector('search_vector').generatedAlwaysAs(sql`to_tsvector('english', search_text)`),
  createdAt: createdAt(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
}, (t) => [
  // A deleted adapter frees its name at once; restoring it fails if the name was taken since.
  uniqueIndex('adapters_namespace_name').on(t.namespaceId, t.name).where(sql`${t.deletedAt} is null`),
  index('adapters_search_vector').using('gin', t.searchVector),
  index('adapters_name_trigram').using('gin', sql`${t.name} gin_trgm_ops`),
  index('adapters_listed_updated').on(t.updatedAt, t.id).where(sql`${t.latestVersion} is not null and ${t.deletedAt} is null`),
  index('adapters_listed_downloads').on(t.downloads, t.id).where(sql`${t.latestVersion} is not null and ${t.deletedAt} is null`),
  index('adapters_listed_likes').on(t.likes, t.id).where(sql`${t.latestVersion} is not null and ${t.deletedAt} is null`),
  index('adapters_listed_score').on(sql`coalesce(${t.bestScore}, -1)`, t.id).where(sql`${t.latestVersion} is not null and ${t.deletedAt} is null`),
  index('adapters_base_domain').on(t.baseModelId, t.domain),
]);

/** Old names of renamed or transferred adapters; lookups by an old name redirect to the adapter. */
export const adapterRedirects = pgTable('adapter_redirects', {
  namespace: text('namespace').notNull(),
  name: text('name').notNull(),
  adapterId: uuid('adapter_id').notNull().references(() => adapters.id),
  createdAt: createdAt(),
}, (t) => [uniqueIndex('adapter_redirects_name').on(t.namespace, t.name)]);

export const adapterVersions = pgTable('adapter_versions', {
  id: serial('id').primaryKey(),
  adapterId: uuid('adapter_id').notNull().references(() => adapters.id),
  version: integer('version').notNull(),
  config: jsonb('config').$type<Record<string, unknown>>().notNull(),
  configSummary: jsonb('config_summary').$type<Record<string, unknown>>().notNull(),
  // Optional semver label chosen by the publisher ("1.2.0"); the number stays the identity.
  label: text('label'),
  changelog: text('changelog'),
  modelCard: text('model_card'),
  // The model card's YAML front matter (base_model, license, tags, datasets, language, domain).
  cardMetadata: jsonb('card_metadata').$type<Record<string, unknown>>().notNull().default({}),
  sizeBytes: bigint('size_bytes', { mode: 'number' }).notNull().default(0),
  warnings: jsonb('warnings').$type<string[]>().notNull().default([]),
  lineage: jsonb('lineage').$type<Record<string, unknown>>(),
  // A job publishes at most one version: the unique index makes completion idempotent.
  sourceJobId: uuid('source_job_id').unique(),
  publishedBy: uuid('published_by').references(() => users.id),
  downloads: integer('downloads').notNull().default(0),
  // A yanked version leaves "latest" and listings but stays downloadable by its number.
  yankedAt: timestamp('yanked_at', { withTimezone: true }),
  yankReason: text('yank_reason'),
  createdAt: createdAt(),
}, (t) => [uniqueIndex('adapter_versions_number').on(t.adapterId, t.version)]);

/** One row per client, version and UTC day: repeated downloads on one day count once. */
export const downloadEvents = pgTable('download_events', {
  versionId: integer('version_id').notNull().references(() => adapterVersions.id),
  // sha256 of the user id, or of the client address for anonymous downloads.
  clientKey: text('client_key').notNull(),
  day: text('day').notNull(),
}, (t) => [uniqueIndex('download_events_once').on(t.versionId, t.clientKey, t.day)]);

export const likes = pgTable('likes', {
  userId: uuid('user_id').notNull().references(() => users.id),
  adapterId: uuid('adapter_id').notNull().references(() => adapters.id),
  createdAt: createdAt(),
}, (t) => [uniqueIndex('likes_once').on(t.userId, t.adapterId)]);

export const adapterFiles = pgTable('adapter_files', {
  id: serial('id').primaryKey(),
  versionId: integer('version_id').notNull().references(() => adapterVersions.id),
  path: text('path').notNull(),
  sha256: text('sha256').notNull().references(() => blobs.sha256),
  size: bigint('size', { mode: 'number' }).notNull(),
}, (t) => [uniqueIndex('adapter_files_path').on(t.versionId, t.path)]);

export const datasets = pgTable('datasets', {
  id: uuid('id').primaryKey().defaultRandom(),
  namespaceId: uuid('namespace_id').notNull().references(() => namespaces.id),
  name: text('name').notNull(),
  createdAt: createdAt(),
}, (t) => [uniqueIndex('datasets_namespace_name').on(t.namespaceId, t.name)]);

export const datasetVersions = pgTable('dataset_versions', {
  id: serial('id').primaryKey(),
  datasetId: uuid('dataset_id').notNull().references(() => datasets.id),
  version: integer('version').notNull(),
  sha256: text('sha256').notNull().references(() => blobs.sha256),
  size: bigint('size', { mode: 'number' }).notNull(),
  filename: text('filename').notNull(),
  // Whether the file passed validation; an invalid version is kept so its report can be read.
  valid: boolean('valid').notNull(),
  report: jsonb('report').$type<Record<string, unknown>>().notNull(),
  // Where the file came from: the uploaded CSV/TSV and its column mapping, or the source version
  // with the cleaning, split and mixing that derived this one. Null for a JSONL upload.
  lineage: jsonb('lineage').$type<Record<string, unknown>>(),
  createdAt: createdAt(),
}, (t) => [uniqueIndex('dataset_versions_number').on(t.datasetId, t.version)]);

export interface JobCheckpoint {
  step: number;
  attempt: number;
  files: { path: string; size: number; sha256: string }[];
}

export const jobStates = ['validating', 'queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobState = (typeof jobStates)[number];

export const jobs = pgTable('jobs', {
  id: uuid('id').primaryKey().defaultRandom(),
  kind: text('kind', { enum: ['finetune', 'evaluate', 'export'] }).notNull(),
  state: text('state', { enum: jobStates }).notNull(),
  namespaceId: uuid('namespace_id').notNull().references(() => namespaces.id),
  createdBy: uuid('created_by').references(() => users.id),
  baseModelId: text('base_model_id').notNull().references(() => baseModels.id),
  // Kind-specific parameters: hyperparameters and target adapter for a fine-tune, task and subjects for an evaluation.
  params: jsonb('params').$type<Record<string, unknown>>().notNull(),
  datasetVersionId: integer('dataset_version_id').references(() => datasetVersions.id),
  parentJobId: uuid('parent_job_id'),
  resultVersionId: integer('result_version_id').references(() => adapterVersions.id),
  attempts: integer('attempts').notNull().default(0),
  maxAttempts: integer('max_attempts').notNull(),
  runnerId: uuid('runner_id').references(() => runners.id),
  leaseToken: text('lease_token'),
  leaseExpiresAt: timestamp('lease_expires_at', { withTimezone: true }),
  cancelRequested: boolean('cancel_requested').notNull().default(false),
  progress: jsonb('progress').$type<Record<string, unknown>>(),
  // The last training checkpoint a runner uploaded; a retried attempt resumes from it.
  checkpoint: jsonb('checkpoint').$type<JobCheckpoint>(),
  summary: jsonb('summary').$type<Record<string, unknown>>(),
  error: jsonb('error').$type<{ reason: string; message: string }>(),
  createdAt: createdAt(),
  queuedAt: timestamp('queued_at', { withTimezone: true }),
  startedAt: timestamp('started_at', { withTimezone: true }),
  finishedAt: timestamp('finished_at', { withTimezone: true }),
}, (t) => [index('jobs_queue').on(t.state, t.queuedAt)]);

/**
 * An ONNX edge bundle of an adapter version, written by an export job: the files (content-addressed
 * blobs), the bundle's manifest.json and the runner's edge report. A version may have several; the
 * newest is shown.
 */
export const edgeExports = pgTable('edge_exports', {
  id: serial('id').primaryKey(),
  versionId: integer('version_id').notNull().references(() => adapterVersions.id),
  // The job that produced it: unique, so a repeated completion records one bundle.
  jobId: uuid('job_id').notNull().unique().references(() => jobs.id),
  files: jsonb('files').$type<{ path: string; size: number; sha256: string }[]>().notNull(),
  manifest: jsonb('manifest').$type<Record<string, unknown>>().notNull(),
  report: jsonb('report').$type<Record<string, unknown>>(),
  createdAt: createdAt(),
}, (t) => [index('edge_exports_version').on(t.versionId, t.id)]);

/** Progress, metric and log events of a job, in arrival order. */
export const jobEvents = pgTable('job_events', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  jobId: uuid('job_id').notNull().references(() => jobs.id),
  attempt: integer('attempt').notNull(),
  type: text('type').notNull(),
  payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
  createdAt: createdAt(),
}, (t) => [index('job_events_job').on(t.jobId, t.id)]);

/** In-app notices for a user, such as a job of theirs that ended. */
export const notifications = pgTable('notifications', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull().references(() => users.id),
  jobId: uuid('job_id').references(() => jobs.id),
  // The ended job's state (succeeded, failed, cancelled).
  state: text('state').notNull(),
  message: text('message').notNull(),
  readAt: timestamp('read_at', { withTimezone: true }),
  createdAt: createdAt(),
}, (t) => [index('notifications_user').on(t.userId, t.createdAt)]);

/**
 * A user's webhook for their jobs' ends. The signing secret is stored AES-256-GCM encrypted
 * under a key derived from NEXTAUTH_SECRET, because signing needs the secret itself.
 */
export const webhooks = pgTable('webhooks', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull().unique().references(() => users.id),
  url: text('url').notNull(),
  secretCiphertext: text('secret_ciphertext').notNull(),
  createdAt: createdAt(),
});

export interface WebhookAttempt {
  at: string;
  // HTTP status of the receiver's response; null without one (rejected address, timeout).
  status: number | null;
  error: string | null;
}

/** One event to send to a webhook, retried with exponential backoff until it succeeds or runs out of attempts. */
export const webhookDeliveries = pgTable('webhook_deliveries', {
  id: uuid('id').primaryKey().defaultRandom(),
  webhookId: uuid('webhook_id').notNull().references(() => webhooks.id, { onDelete: 'cascade' }),
  jobId: uuid('job_id').references(() => jobs.id),
  event: text('event').notNull(),
  payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
  state: text('state', { enum: ['pending', 'delivered', 'failed'] }).notNull().default('pending'),
  attempts: jsonb('attempts').$type<WebhookAttempt[]>().notNull().default([]),
  nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull().defaultNow(),
  createdAt: createdAt(),
}, (t) => [index('webhook_deliveries_due').on(t.state, t.nextAttemptAt), index('webhook_deliveries_webhook').on(t.webhookId, t.createdAt)]);

/** A multiple-choice benchmark task whose items live in S3 as JSONL. */
export const benchmarkTasks = pgTable('benchmark_tasks', {
  id: text('id').primaryKey(),
  displayName: text('display_name').notNull(),
  description: text('description').notNull(),
  domain: text('domain').notNull(),
  version: integer('version').notNull(),
  dataSha256: text('data_sha256').notNull().references(() => blobs.sha256),
  itemCount: integer('item_count').notNull(),
  // Scores that need no model, computed from the task's own items: random choice and the majority answer.
  baselines: jsonb('baselines').$type<TaskBaselines>(),
  createdAt: createdAt(),
});

export interface TaskBaselines {
  random: number;
  majority: { answer: string; accuracy: number; macroF1?: number };
  // Macro-F1 of a uniform random choice, from its expected confusion counts; only for
  // classification tasks, whose items all offer the same choices.
  randomMacroF1?: number;
}

export const evalResults = pgTable('eval_results', {
  id: serial('id').primaryKey(),
  taskId: text('task_id').notNull().references(() => benchmarkTasks.id),
  taskVersion: integer('task_version').notNull(),
  baseModelId: text('base_model_id').notNull().references(() => baseModels.id),
  // Null for the base model alone.
  adapterVersionId: integer('adapter_version_id').references(() => adapterVersions.id),
  jobId: uuid('job_id').notNull().references(() => jobs.id),
  correct: integer('correct').notNull(),
  total: integer('total').notNull(),
  accuracy: doublePrecision('accuracy').notNull(),
  stderr: doublePrecision('stderr').notNull(),
  // sha256 of the task version, item limit, few-shot count, seed and scoring method: a change makes a new result.
  configHash: text('config_hash').notNull(),
  hardware: text('hardware').notNull(),
  durationSeconds: doublePrecision('duration_seconds').notNull(),
  // The columns below are null on results scored before the worker used lm-evaluation-harness.
  accNorm: doublePrecision('acc_norm'),
  accNormStderr: doublePrecision('acc_norm_stderr'),
  // Only for classification tasks, whose items all offer the same choices.
  macroF1: doublePrecision('macro_f1'),
  harnessVersion: text('harness_version'),
  numFewshot: integer('num_fewshot').notNull().default(0),
  seed: integer('seed'),
  // sha256 of the harness task configuration and its data files, computed by the worker.
  taskConfigHash: text('task_config_hash'),
  // Set when the evaluation ran as part of a suite.
  suiteId: text('suite_id'),
  suiteVersion: integer('suite_version'),
  // Word n-gram overlap between the adapter's training data and the scored items, for
  // versions trained here (null otherwise): see server/services/contamination.ts.
  contamination: jsonb('contamination').$type<Record<string, unknown>>(),
  createdAt: createdAt(),
}, (t) => [uniqueIndex('eval_results_once').on(t.jobId, t.taskId, t.adapterVersionId)]);

/**
 * A benchmark suite: tasks with their few-shot counts and one seed. Suites are immutable
 * per version, so a result that names a suite version always means the same settings.
 */
export const evalSuites = pgTable('eval_suites', {
  id: text('id').notNull(),
  version: integer('version').notNull(),
  displayName: text('display_name').notNull(),
  description: text('description').notNull(),
  domain: text('domain').notNull(),
  seed: integer('seed').notNull(),
  createdAt: createdAt(),
}, (t) => [primaryKey({ columns: [t.id, t.version] })]);

export const evalSuiteTasks = pgTable('eval_suite_tasks', {
  suiteId: text('suite_id').notNull(),
  suiteVersion: integer('suite_version').notNull(),
  taskId: text('task_id').notNull().references(() => benchmarkTasks.id),
  // The task version the suite version was defined with.
  taskVersion: integer('task_version').notNull(),
  numFewshot: integer('num_fewshot').notNull(),
  // Items per task, for quick suites; null scores all of them.
  limit: integer('item_limit'),
  position: integer('position').notNull(),
}, (t) => [primaryKey({ columns: [t.suiteId, t.suiteVersion, t.taskId] })]);

/**
 * Playground generations a user chose to keep ("Save"). Prompts and outputs are stored only
 * here and only on that click; everything else the playground generates is discarded.
 */
export const playgroundSaves = pgTable('playground_saves', {
  id: uuid('id').primaryKey().defaultRandom(),
  userId: uuid('user_id').notNull().references(() => users.id),
  adapterVersionId: integer('adapter_version_id').notNull().references(() => adapterVersions.id),
  prompt: text('prompt').notNull(),
  temperature: doublePrecision('temperature').notNull(),
  maxTokens: integer('max_tokens').notNull(),
  seed: bigint('seed', { mode: 'number' }).notNull(),
  baseOutput: text('base_output').notNull(),
  adapterOutput: text('adapter_output').notNull(),
  createdAt: createdAt(),
}, (t) => [index('playground_saves_user').on(t.userId, t.createdAt)]);
