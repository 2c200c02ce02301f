import { METRICS_NAMESPACE, QUEUE_METRICS } from '../lib/names';

/**
 * Builds one CloudWatch embedded metric format record (a JSON log line) with the queue's
 * counts. Timestamps are milliseconds since the epoch.
 */
export function queueMetricsRecord(stage: string, counts: { queued: number; running: number }, timestampMs: number): Record<string, unknown> {
  return {
    _aws: {
      Timestamp: timestampMs,
      CloudWatchMetrics: [{
        Namespace: METRICS_NAMESPACE,
        Dimensions: [['Stage']],
        Metrics: [
          { Name: QUEUE_METRICS.queued, Unit: 'Count' },
          { Name: QUEUE_METRICS.running, Unit: 'Count' },
          { Name: QUEUE_METRICS.backlog, Unit: 'Count' },
        ],
      }],
    },
    Stage: stage,
    [QUEUE_METRICS.queued]: counts.queued,
    [QUEUE_METRICS.running]: counts.running,
    [QUEUE_METRICS.backlog]: counts.queued + counts.running,
  };
}
