/**
 * Self-reported scores from a model card's `model-index` front matter, the Hugging Face
 * layout: `model-index: [{ name, results: [{ task, dataset: { name, type }, metrics: [{ type,
 * value, name }] }] }]`. The registry never checks these numbers, so they are shown apart from
 * measured results and never ranked.
 */

export interface SelfReportedMetric {
  model: string | null;
  task: string | null;
  dataset: string;
  metric: string;
  value: number;
}

// A card may list many results, and the pages show the first ones.
const MAX_METRICS = 50;

function text(value: unknown): string | null {
  return typeof value === 'string' && value.trim() !== '' ? value.trim().slice(0, 200) : null;
}

function numeric(value: unknown): number | null {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && /^-?\d+(\.\d+)?%?$/.test(value.trim())) {
    const parsed = Number.parseFloat(value);
    return value.trim().endsWith('%') ? parsed / 100 : parsed;
  }
  return null;
}

/**
 * Reads the metrics of `model-index` from parsed front matter. Entries that are not objects,
 * or metrics without a numeric value, are skipped, because one odd entry in a hand-written
 * card should not hide the others.
 */
export function selfReportedMetrics(frontMatter: Record<string, unknown> | null | undefined): SelfReportedMetric[] {
  const index = frontMatter?.['model-index'];
  if (!Array.isArray(index)) return [];
  const metrics: SelfReportedMetric[] = [];
  for (const model of index) {
    if (model === null || typeof model !== 'object') continue;
    const { name, results } = model as { name?: unknown; results?: unknown };
    if (!Array.isArray(results)) continue;
    for (const result of results) {
      if (result === null || typeof result !== 'object') continue;
      const { task, dataset, metrics: values } = result as { task?: unknown; dataset?: unknown; metrics?: unknown };
      const taskObject = (task ?? {}) as { type?: unknown; name?: unknown };
      const datasetObject = (dataset ?? {}) as { name?: unknown; type?: unknown };
      const datasetName = text(datasetObject.name) ?? text(datasetObject.type) ?? text(dataset);
      if (!datasetName || !Array.isArray(values)) continue;
      for (const metric of values) {
        if (metric === null || typeof metric !== 'object') continue;
        const { type, name: metricName, value } = metric as { type?: unknown; name?: unknown; value?: unknown };
        const parsed = numeric(value);
        const label = text(metricName) ?? text(type);
        if (parsed === null || !label) continue;
        metrics.push({ model: text(name), task: text(taskObject.name) ?? text(taskObject.type), dataset: datasetName, metric: label, value: parsed });
        if (metrics.length >= MAX_METRICS) return metrics;
      }
    }
  }
  return metrics;
}
