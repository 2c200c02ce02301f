/** One adapter version on the chart: its domain gain and its change on the general suite, both as fractions. */
export interface ChartPoint { label: string; gain: number; generalChange: number; flagged: boolean }

const WIDTH = 560;
const HEIGHT = 360;
const MARGIN = 48;

const points = (value: number) => `${value >= 0 ? '+' : ''}${(value * 100).toFixed(1)}`;

/**
 * Draws a scatter plot on the server: domain gain (y) against the change on the general suite
 * (x), one point per adapter version. The axes cross at zero, so the top right contains versions
 * that gained without forgetting. Contaminated results are hollow.
 */
export function GainChart({ data, domain, general }: { data: ChartPoint[]; domain: string; general: string }) {
  if (data.length === 0) return <p className="muted">No version has both a ranked score and a general-suite score yet.</p>;
  // A symmetric range around zero, at least ±5 points, so the quadrants keep their meaning.
  const span = (values: number[]) => Math.max(0.05, ...values.map(Math.abs)) * 1.15;
  const xSpan = span(data.map((d) => d.generalChange));
  const ySpan = span(data.map((d) => d.gain));
  const x = (value: number) => MARGIN + ((value + xSpan) / (2 * xSpan)) * (WIDTH - 2 * MARGIN);
  const y = (value: number) => HEIGHT - MARGIN - ((value + ySpan) / (2 * ySpan)) * (HEIGHT - 2 * MARGIN);
  return (
    <svg data-testid="gain-chart" width={WIDTH} height={HEIGHT} viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img"
      aria-label={`${domain} gain against change on ${general}, in points`} style={{ background: '#fff', border: '1px solid var(--line)' }}>
      <line x1={MARGIN} x2={WIDTH - MARGIN} y1={y(0)} y2={y(0)} stroke="#8c959f" />
      <line x1={x(0)} x2={x(0)} y1={MARGIN} y2={HEIGHT - MARGIN} stroke="#8c959f" />
      <text x={WIDTH / 2} y={HEIGHT - 12} textAnchor="middle" fontSize="12">change on {general} (points; left = forgetting)</text>
      <text x={14} y={HEIGHT / 2} textAnchor="middle" fontSize="12" transform={`rotate(-90 14 ${HEIGHT / 2})`}>gain on {domain} (points)</text>
      <text x={WIDTH - MARGIN} y={y(0) - 4} textAnchor="end" fontSize="10" fill="#5b6470">{points(xSpan)}</text>
      <text x={MARGIN} y={y(0) - 4} fontSize="10" fill="#5b6470">{points(-xSpan)}</text>
      <text x={x(0) + 4} y={MARGIN + 10} fontSize="10" fill="#5b6470">{points(ySpan)}</text>
      <text x={x(0) + 4} y={HEIGHT - MARGIN - 4} fontSize="10" fill="#5b6470">{points(-ySpan)}</text>
      {data.map((d) => (
        <g key={d.label} data-testid="chart-point">
          <circle cx={x(d.generalChange)} cy={y(d.gain)} r={5} fill={d.flagged ? '#fff' : '#2f5bd3'} stroke="#2f5bd3" strokeWidth={2}>
            <title>{`${d.label}: ${points(d.gain)} on ${domain}, ${points(d.generalChange)} on ${general}${d.flagged ? ' (contamination flagged)' : ''}`}</title>
          </circle>
          <text x={x(d.generalChange) + 7} y={y(d.gain) - 7} fontSize="10">{d.label}</text>
        </g>
      ))}
    </svg>
  );
}
