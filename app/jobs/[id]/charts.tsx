export interface Series {
  label: string;
  color: string;
  points: { step: number; value: number }[];
}

/** Draws one or more series against the training step as an SVG line chart with a shared y axis. */
export function LineChart({ title, series, format = (value) => value.toFixed(3) }: { title: string; series: Series[]; format?: (value: number) => string }) {
  const all = series.flatMap((s) => s.points);
  if (all.length < 2) return <p className="muted">The {title.toLowerCase()} chart appears after two training steps.</p>;

  const width = 640;
  const height = 200;
  const pad = 36;
  const maxStep = Math.max(...all.map((p) => p.step));
  const values = all.map((p) => p.value);
  const low = Math.min(...values);
  const high = Math.max(...values);
  const x = (step: number) => pad + ((width - 2 * pad) * step) / Math.max(1, maxStep);
  const y = (value: number) => height - pad - ((height - 2 * pad) * (value - low)) / Math.max(1e-12, high - low);

  return (
    <figure style={{ margin: '8px 0' }}>
      <svg width={width} height={height} role="img" aria-label={title} style={{ background: '#fff', border: '1px solid var(--line)' }}>
        {series.map((s) => {
          if (s.points.length === 0) return null;
          const path = s.points.map((p, i) => `${i ? 'L' : 'M'}${x(p.step).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
          return (
            <g key={s.label}>
              <path d={path} fill="none" stroke={s.color} strokeWidth={2} />
              {s.points.length === 1 && <circle cx={x(s.points[0]!.step)} cy={y(s.points[0]!.value)} r={3} fill={s.color} />}
            </g>
          );
        })}
        <text x={pad} y={16} fontSize={12}>{title}: {format(high)}</text>
        <text x={pad} y={height - 8} fontSize={12}>{format(low)} · step {maxStep}</text>
      </svg>
      <figcaption className="muted">
        {series.map((s) => <span key={s.label} style={{ marginRight: 12 }}><span style={{ color: s.color }}>■</span> {s.label}</span>)}
      </figcaption>
    </figure>
  );
}

/** Formats a byte count in binary units (KiB, MiB, GiB). */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** Formats seconds as "1 h 05 min", "4 min 10 s" or "12 s". */
export function formatSeconds(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
  const total = Math.round(seconds);
  if (total >= 3600) return `${Math.floor(total / 3600)} h ${String(Math.floor((total % 3600) / 60)).padStart(2, '0')} min`;
  if (total >= 60) return `${Math.floor(total / 60)} min ${total % 60} s`;
  return `${total} s`;
}
