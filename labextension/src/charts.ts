/**
 * Small dependency-free SVG charts for the results and comparison views: a line chart of
 * several series with axes, a legend and the values under the pointer (the heatmap of a
 * confusion matrix is in heatmap.ts).
 */
import { el } from './format';

const SVG = 'http://www.w3.org/2000/svg';

/** Distinct colours readable on light and dark themes (one per run or class). */
export const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf'
];

/** An SVG element with attributes. */
export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {}
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    node.setAttribute(key, String(value));
  }
  return node;
}

/** One line of a chart. */
export interface ILineSeries {
  name: string;
  color: string;
  x: number[];
  y: (number | null)[];
  /** Drawn thicker (the mean over classes). */
  bold?: boolean;
  /** Drawn dashed (a validation loss beside the training one). */
  dashed?: boolean;
}

export interface ILineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** Fixed y range (curves in [0, 1]); else the data's range. */
  yRange?: [number, number];
  /** Fixed x range; else the data's range. */
  xRange?: [number, number];
  formatX?: (x: number) => string;
  /** Ticks on whole numbers only (epochs). */
  integerX?: boolean;
  formatY?: (y: number) => string;
}

const MARGIN = { left: 48, right: 12, top: 10, bottom: 34 };

/** A line chart of several series; hovering shows each series' value at the nearest x. */
export class LineChart {
  readonly node = el('figure', 'jp-yolo-Chart');
  private readonly plot: SVGSVGElement;
  private readonly legend = el('div', 'jp-yolo-Chart-legend');
  private readonly tip = el('div', 'jp-yolo-Chart-tip');
  private series: ILineSeries[] = [];
  private scaleX = (x: number): number => x;
  private unscaleX = (px: number): number => px;
  private scaleY = (y: number): number => y;
  private readonly width: number;
  private readonly height: number;
  private readonly cursor: SVGLineElement;

  constructor(private readonly options: ILineChartOptions) {
    this.width = options.width ?? 420;
    this.height = options.height ?? 240;
    this.node.append(el('figcaption', 'jp-yolo-Chart-title', options.title));
    this.plot = svg('svg', {
      class: 'jp-yolo-Chart-plot',
      width: this.width,
      height: this.height,
      viewBox: `0 0 ${this.width} ${this.height}`,
      role: 'img',
      'aria-label': options.title
    });
    this.cursor = svg('line', { class: 'jp-yolo-Chart-cursor', y1: MARGIN.top });
    const box = el('div', 'jp-yolo-Chart-box');
    this.tip.hidden = true;
    box.append(this.plot, this.tip);
    this.node.append(box, this.legend);
    this.plot.addEventListener('mousemove', event => this.hover(event));
    this.plot.addEventListener('mouseleave', () => {
      this.tip.hidden = true;
      this.cursor.setAttribute('visibility', 'hidden');
    });
  }

  /** Draw these series (replacing what was drawn). */
  draw(series: ILineSeries[]): void {
    this.series = series;
    const xs: number[] = [];
    const ys: number[] = [];
    for (const s of series) {
      s.x.forEach((x, i) => {
        const y = s.y[i];
        if (y !== null && Number.isFinite(y) && Number.isFinite(x)) {
          xs.push(x);
          ys.push(y);
        }
      });
    }
    const [x0, x1] = this.options.xRange ?? range(xs);
    const [y0, y1] =
      this.options.yRange ??
      padded(
        range(ys),
        ys.every(y => y >= 0)
      );
    const w = this.width - MARGIN.left - MARGIN.right;
    const h = this.height - MARGIN.top - MARGIN.bottom;
    this.scaleX = x => MARGIN.left + ((x - x0) / (x1 - x0 || 1)) * w;
    this.unscaleX = px => x0 + ((px - MARGIN.left) / w) * (x1 - x0 || 1);
    this.scaleY = y => MARGIN.top + (1 - (y - y0) / (y1 - y0 || 1)) * h;

    const parts: SVGElement[] = [];
    const fx = this.options.formatX ?? tickText;
    const fy = this.options.formatY ?? tickText;
    for (const t of ticks(y0, y1)) {
      const y = this.scaleY(t);
      parts.push(
        svg('line', {
          class: 'jp-yolo-Chart-grid',
          x1: MARGIN.left,
          x2: MARGIN.left + w,
          y1: y,
          y2: y
        })
      );
      const label = svg('text', {
        class: 'jp-yolo-Chart-tick',
        x: MARGIN.left - 4,
        y: y + 3,
        'text-anchor': 'end'
      });
      label.textContent = fy(t);
      parts.push(label);
    }
    for (const t of ticks(x0, x1, this.options.integerX)) {
      const x = this.scaleX(t);
      const label = svg('text', {
        class: 'jp-yolo-Chart-tick',
        x,
        y: MARGIN.top + h + 13,
        'text-anchor': 'middle'
      });
      label.textContent = fx(t);
      parts.push(label);
    }
    parts.push(
      svg('rect', {
        class: 'jp-yolo-Chart-frame',
        x: MARGIN.left,
        y: MARGIN.top,
        width: w,
        height: h
      })
    );
    const xLabel = svg('text', {
      class: 'jp-yolo-Chart-axis',
      x: MARGIN.left + w / 2,
      y: this.height - 4,
      'text-anchor': 'middle'
    });
    xLabel.textContent = this.options.xLabel;
    const yLabel = svg('text', {
      class: 'jp-yolo-Chart-axis',
      x: -(MARGIN.top + h / 2),
      y: 11,
      transform: 'rotate(-90)',
      'text-anchor': 'middle'
    });
    yLabel.textContent = this.options.yLabel;
    parts.push(xLabel, yLabel);

    let points = 0;
    for (const s of series) {
      const coords: string[] = [];
      s.x.forEach((x, i) => {
        const y = s.y[i];
        if (y !== null && Number.isFinite(y)) {
          coords.push(`${this.scaleX(x).toFixed(1)},${this.scaleY(y).toFixed(1)}`);
        }
      });
      points += coords.length;
      const line = svg('polyline', {
        class: 'jp-yolo-Chart-line',
        points: coords.join(' '),
        fill: 'none',
        'stroke-width': s.bold ? 3 : 1.5
      });
      line.style.stroke = s.color;
      line.dataset.series = s.name;
      line.dataset.points = String(coords.length);
      if (s.dashed) {
        line.setAttribute('stroke-dasharray', '5 3');
      }
      parts.push(line);
      if (coords.length <= 30) {
        // few points (epochs): mark each, so runs drawn over each other still show
        for (const coord of coords) {
          const [cx, cy] = coord.split(',');
          const dot = svg('circle', { class: 'jp-yolo-Chart-dot', cx, cy, r: s.bold ? 4 : 3 });
          dot.style.fill = s.dashed ? 'none' : s.color;
          dot.style.stroke = s.color;
          parts.push(dot);
        }
      }
    }
    this.cursor.setAttribute('y2', String(MARGIN.top + h));
    this.cursor.setAttribute('visibility', 'hidden');
    parts.push(this.cursor);
    this.plot.replaceChildren(...parts);
    this.node.dataset.series = String(series.length);
    this.node.dataset.points = String(points);

    this.legend.replaceChildren(
      ...series.map(s => {
        const item = el('span', 'jp-yolo-Chart-legendItem');
        const swatch = el('span', 'jp-yolo-Chart-swatch');
        swatch.style.background = s.color;
        if (s.dashed) {
          swatch.classList.add('jp-yolo-mod-dashed');
          swatch.style.borderTopColor = s.color;
        }
        item.append(swatch, document.createTextNode(s.name));
        if (s.bold) {
          item.classList.add('jp-yolo-mod-bold');
        }
        return item;
      })
    );
  }

  private hover(event: MouseEvent): void {
    if (!this.series.length) {
      return;
    }
    const rect = this.plot.getBoundingClientRect();
    const px = ((event.clientX - rect.left) / (rect.width || 1)) * this.width;
    const x = this.unscaleX(px);
    const fx = this.options.formatX ?? tickText;
    const fy = this.options.formatY ?? ((y: number) => y.toFixed(3));
    const lines: HTMLElement[] = [];
    let at: number | null = null;
    for (const s of this.series) {
      const i = nearest(s.x, x);
      if (i < 0 || s.y[i] === null) {
        continue;
      }
      at ??= s.x[i];
      const row = el('div', '', `${s.name}: ${fy(s.y[i])}`);
      row.style.borderLeft = `3px solid ${s.color}`;
      lines.push(row);
    }
    if (at === null) {
      return;
    }
    const cx = this.scaleX(at);
    this.cursor.setAttribute('x1', String(cx));
    this.cursor.setAttribute('x2', String(cx));
    this.cursor.setAttribute('visibility', 'visible');
    this.tip.replaceChildren(
      el('strong', '', `${this.options.xLabel} ${fx(at)}`),
      ...lines.slice(0, 12)
    );
    this.tip.hidden = false;
    const left = (cx / this.width) * rect.width;
    this.tip.style.left = `${Math.min(left + 12, rect.width - 150)}px`;
  }
}

function range(values: number[]): [number, number] {
  if (!values.length) {
    return [0, 1];
  }
  let low = Infinity;
  let high = -Infinity;
  for (const v of values) {
    low = Math.min(low, v);
    high = Math.max(high, v);
  }
  return low === high ? [low - 0.5, high + 0.5] : [low, high];
}

/** A range with 5% room at both ends; from zero when every value is positive. */
function padded([low, high]: [number, number], positive: boolean): [number, number] {
  if (positive) {
    return [0, high > 0 ? high * 1.05 : 1];
  }
  const pad = (high - low) * 0.05;
  return [low - pad, high + pad];
}

/** About five round tick values covering [low, high]. */
export function ticks(low: number, high: number, integer = false): number[] {
  const span = high - low;
  if (!(span > 0) || !Number.isFinite(span)) {
    return [low];
  }
  const raw = span / 5;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const found = [1, 2, 5, 10].map(k => k * power).find(s => s >= raw) ?? raw;
  const step = integer ? Math.max(1, Math.round(found)) : found;
  const out: number[] = [];
  for (let t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step) {
    out.push(Math.round(t / step) * step);
  }
  return out;
}

function tickText(value: number): string {
  return Math.abs(value) >= 100 || Number.isInteger(value)
    ? String(Math.round(value))
    : value.toPrecision(2);
}

function nearest(xs: number[], x: number): number {
  let best = -1;
  let distance = Infinity;
  xs.forEach((v, i) => {
    const d = Math.abs(v - x);
    if (d < distance) {
      distance = d;
      best = i;
    }
  });
  return best;
}
