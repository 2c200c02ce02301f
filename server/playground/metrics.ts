/**
 * Process-local playground counters, served by GET /api/metrics. Each app instance counts its
 * own sessions, so a fleet's totals are the sum over instances.
 */
export const playgroundCounters = {
  // InferenceSessions created for a base model graph; one per base model per process unless a load failed.
  baseSessionLoads: 0,
  // Adapter tensor sets read from S3 and padded, and those served from the in-memory cache.
  adapterLoads: 0,
  adapterCacheHits: 0,
  // Bytes of adapter tensors held in the cache now.
  adapterCacheBytes: 0,
  generations: 0,
};

/** Formats the counters in the Prometheus text exposition format (version 0.0.4). */
export function playgroundMetricsText(): string {
  const lines: string[] = [];
  const add = (name: string, type: 'counter' | 'gauge', help: string, value: number) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`);
  };
  add('adapters_playground_base_session_loads_total', 'counter', 'Playground base model sessions created by this process.', playgroundCounters.baseSessionLoads);
  add('adapters_playground_adapter_loads_total', 'counter', 'Adapter tensor sets read from storage by this process.', playgroundCounters.adapterLoads);
  add('adapters_playground_adapter_cache_hits_total', 'counter', 'Adapter tensor sets served from the in-memory cache.', playgroundCounters.adapterCacheHits);
  add('adapters_playground_adapter_cache_bytes', 'gauge', 'Bytes of adapter tensors held in the cache.', playgroundCounters.adapterCacheBytes);
  add('adapters_playground_generations_total', 'counter', 'Playground requests that started generating.', playgroundCounters.generations);
  return `${lines.join('\n')}\n`;
}
