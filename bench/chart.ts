/**
 * A small SVG line chart for docs/benchmarks.md: one panel per metric, population size on a logarithmic x axis,
 * one line per operation. Plain SVG text (no dependency): GitHub and browsers render it as an image.
 */

export interface Series {
  name: string;
  points: Array<{ x: number; y: number }>;
}

export interface Panel {
  title: string;
  yLabel: string;
  series: Series[];
  /** Logarithmic y axis (throughputs spanning orders of magnitude). */
  logY?: boolean;
}

const WIDTH = 560;
const HEIGHT = 340;
const MARGIN = { left: 70, right: 20, top: 36, bottom: 48 };
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceNumber(n: number): string {
  if (n >= 1_000_000) return `${n / 1_000_000}M`;
  if (n >= 1000) return `${n / 1000}k`;
  return Number(n.toPrecision(3)).toString();
}

/** Ticks for a log axis: powers of ten (and 2, 5 between them when the range is short). */
function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  const short = Math.log10(max / min) < 2.5;
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of short ? [1, 2, 5] : [1]) {
      const v = m * 10 ** e;
      if (v >= min * 0.999 && v <= max * 1.001) ticks.push(v);
    }
  }
  return ticks;
}

function linearTicks(max: number): number[] {
  const step = 10 ** Math.floor(Math.log10(max / 4 || 1));
  const unit = [1, 2, 5, 10].map((m) => m * step).find((s) => max / s <= 6) ?? 10 * step;
  const ticks: number[] = [];
  for (let v = 0; v <= max * 1.0001; v += unit) ticks.push(v);
  return ticks;
}

function panelSvg(panel: Panel, offsetY: number, legend: boolean): string {
  const xs = panel.series.flatMap((s) => s.points.map((p) => p.x));
  const ys = panel.series.flatMap((s) => s.points.map((p) => p.y)).filter((y) => y > 0);
  if (xs.length === 0 || ys.length === 0) return '';
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs) === xMin ? xMin * 10 : Math.max(...xs);
  const yMax = Math.max(...ys) * 1.1;
  const yMin = panel.logY ? Math.min(...ys) / 1.5 : 0;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const px = (x: number): number => MARGIN.left + ((Math.log10(x) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin))) * plotW;
  const py = (y: number): number =>
    offsetY +
    MARGIN.top +
    plotH -
    (panel.logY
      ? ((Math.log10(Math.max(y, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * plotH
      : (y / yMax) * plotH);
  const out: string[] = [];
  out.push(
    `<text x="${WIDTH / 2}" y="${offsetY + 22}" text-anchor="middle" font-size="15" font-weight="bold">${escape(panel.title)}</text>`,
  );
  for (const t of panel.logY ? logTicks(yMin, yMax) : linearTicks(yMax)) {
    const y = py(t);
    out.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${MARGIN.left - 6}" y="${y + 4}" text-anchor="end" font-size="11">${niceNumber(t)}</text>`);
  }
  for (const t of logTicks(xMin, xMax)) {
    const x = px(t);
    out.push(`<line x1="${x}" x2="${x}" y1="${offsetY + MARGIN.top}" y2="${offsetY + HEIGHT - MARGIN.bottom}" stroke="#eee"/>`);
    out.push(`<text x="${x}" y="${offsetY + HEIGHT - MARGIN.bottom + 16}" text-anchor="middle" font-size="11">${niceNumber(t)}</text>`);
  }
  out.push(
    `<rect x="${MARGIN.left}" y="${offsetY + MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444"/>`,
    `<text x="${WIDTH / 2}" y="${offsetY + HEIGHT - 10}" text-anchor="middle" font-size="12">resources stored (log scale)</text>`,
    `<text transform="translate(16 ${offsetY + MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle" font-size="12">${escape(panel.yLabel)}</text>`,
  );
  panel.series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const points = s.points.filter((p) => p.y > 0).map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`);
    out.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${points.join(' ')}"/>`);
    for (const p of points) {
      const [x, y] = p.split(',');
      out.push(`<circle cx="${x}" cy="${y}" r="3" fill="${colour}"/>`);
    }
    if (legend) {
      const ly = offsetY + MARGIN.top + 14 + i * 15;
      out.push(`<rect x="${WIDTH + 10}" y="${ly - 9}" width="12" height="4" fill="${colour}"/>`);
      out.push(`<text x="${WIDTH + 28}" y="${ly - 3}" font-size="11">${escape(s.name)}</text>`);
    }
  });
  return out.join('\n');
}

/** Panels stacked vertically with one legend on the right (the series are the same in every panel). */
export function lineChartSvg(panels: Panel[], legendWidth = 300): string {
  const height = HEIGHT * panels.length;
  const body = panels.map((panel, i) => panelSvg(panel, i * HEIGHT, true)).join('\n');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH + legendWidth}" height="${height}" font-family="sans-serif">\n` +
    `<rect width="100%" height="100%" fill="white"/>\n${body}\n</svg>\n`
  );
}
