/**
 * A tiny SVG line chart of a series (the loss of a training job), and the bounded series that
 * feeds it: past `capacity` points, neighbours are averaged in pairs so the whole history stays
 * visible at constant cost.
 */
const SVG = 'http://www.w3.org/2000/svg';

export class Series {
  private values: number[] = [];

  constructor(readonly capacity = 240) {}

  get length(): number {
    return this.values.length;
  }

  /** The points, oldest first (a copy). */
  get points(): number[] {
    return this.values.slice();
  }

  push(value: number): void {
    if (!Number.isFinite(value)) {
      return;
    }
    this.values.push(value);
    if (this.values.length > this.capacity) {
      const halved: number[] = [];
      for (let i = 0; i + 1 < this.values.length; i += 2) {
        halved.push((this.values[i] + this.values[i + 1]) / 2);
      }
      if (this.values.length % 2 === 1) {
        halved.push(this.values[this.values.length - 1]);
      }
      this.values = halved;
    }
  }

  clear(): void {
    this.values = [];
  }
}

/** An SVG element that redraws itself from a series. */
export class Sparkline {
  readonly node: SVGSVGElement;
  private readonly line: SVGPolylineElement;

  constructor(
    private readonly width = 120,
    private readonly height = 24
  ) {
    this.node = document.createElementNS(SVG, 'svg');
    this.node.setAttribute('class', 'jp-yolo-Sparkline');
    this.node.setAttribute('width', String(width));
    this.node.setAttribute('height', String(height));
    this.node.setAttribute('viewBox', `0 0 ${width} ${height}`);
    this.node.setAttribute('role', 'img');
    this.line = document.createElementNS(SVG, 'polyline');
    this.line.setAttribute('class', 'jp-yolo-Sparkline-line');
    this.line.setAttribute('fill', 'none');
    this.node.appendChild(this.line);
  }

  /** Draw `values` scaled to the box; fewer than two points draw nothing. */
  draw(values: number[], label: string): void {
    this.node.setAttribute('aria-label', label);
    this.node.dataset.points = String(values.length);
    if (values.length < 2) {
      this.line.setAttribute('points', '');
      return;
    }
    const low = Math.min(...values);
    const high = Math.max(...values);
    const span = high - low || 1;
    const pad = 2;
    const step = (this.width - 2 * pad) / (values.length - 1);
    const points = values.map((v, i) => {
      const x = pad + i * step;
      const y = pad + (1 - (v - low) / span) * (this.height - 2 * pad);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    this.line.setAttribute('points', points.join(' '));
  }
}
