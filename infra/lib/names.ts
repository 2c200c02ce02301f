/**
 * Names shared by the CDK stack, the operations function that publishes metrics, and the
 * Kubernetes manifests' tests. Changing one here changes every side together.
 */

/** CloudWatch namespace of the queue metrics; each datapoint carries a `Stage` dimension. */
export const METRICS_NAMESPACE = 'AdapterMarketplace';

export const QUEUE_METRICS = {
  // Jobs waiting for a runner.
  queued: 'QueuedJobs',
  // Jobs a runner holds a lease on.
  running: 'RunningJobs',
  // Queued plus running: zero means every runner is idle.
  backlog: 'BacklogJobs',
} as const;

/** Key prefixes of the artifacts bucket, as server/storage.ts and the upload service write them. */
export const ARTIFACT_PREFIXES = {
  // Content-addressed objects: blobs/sha256/<first two hex digits>/<sha256>.
  blobs: 'blobs/sha256/',
  // Multipart uploads at blobs/upload/<uploadId>/<n>. A verified one stays at this key (the
  // blobs row records it), so no lifecycle rule may expire this prefix.
  uploads: 'blobs/upload/',
} as const;

/**
 * Object tag that marks an artifact as deleted so that a lifecycle rule removes it later.
 * NOTE: the app does not set this tag yet; it deletes unreferenced objects itself after
 * DELETED_ADAPTER_RETENTION_DAYS. The rule is in place for when the purge switches to tagging.
 */
export const DELETED_OBJECT_TAG = { key: 'adapters-deleted', value: 'true' } as const;
