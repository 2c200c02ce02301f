/** Prometheus text exposition (format version 0.0.4), shared by the app and the runner. */

/** One Prometheus sample: metric name, labels and value. */
export interface Sample {
  name: string;
  labels?: Record<string, string>;
  value: number;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** Renders samples in the Prometheus text exposition format (version 0.0.4). */
export function renderPrometheus(families: { name: string; help: string; type: 'gauge' | 'counter' | 'summary'; samples: Sample[] }[]): string {
  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
    for (const sample of family.samples) {
      const labels = Object.entries(sample.labels ?? {}).map(([key, value]) => `${key}="${escapeLabel(value)}"`).join(',');
      lines.push(`${sample.name}${labels ? `{${labels}}` : ''} ${Number.isFinite(sample.value) ? sample.value : 'NaN'}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
