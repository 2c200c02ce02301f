/**
 * A shields.io style badge: a grey label on the left and a coloured value on the right, as a
 * self-contained SVG. Widths are estimated from the character count (about 6.5 px per
 * character of 11 px Verdana), so very wide glyphs may touch the edge.
 */

const CHARACTER_WIDTH = 6.5;
const PADDING = 10;

function escapeXml(value: string): string {
  return value.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

export function badgeSvg(label: string, value: string, color: string): string {
  const labelWidth = Math.round(label.length * CHARACTER_WIDTH + PADDING);
  const valueWidth = Math.round(value.length * CHARACTER_WIDTH + PADDING);
  const width = labelWidth + valueWidth;
  const [l, v] = [escapeXml(label), escapeXml(value)];
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="20" role="img" aria-label="${l}: ${v}">`
    + `<title>${l}: ${v}</title>`
    + `<rect width="${labelWidth}" height="20" fill="#555"/>`
    + `<rect x="${labelWidth}" width="${valueWidth}" height="20" fill="${escapeXml(color)}"/>`
    + '<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
    + `<text x="${labelWidth / 2}" y="14">${l}</text>`
    + `<text x="${labelWidth + valueWidth / 2}" y="14">${v}</text>`
    + '</g></svg>';
}

/** Green above the base model, red below it, grey when there is nothing to compare. */
export function badgeColor(gain: number | null): string {
  if (gain === null) return '#9f9f9f';
  if (gain > 0) return '#4c1';
  return gain < 0 ? '#e05d44' : '#007ec6';
}
