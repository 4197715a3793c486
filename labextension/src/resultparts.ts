/**
 * Parts of the run results view: the per-class metrics table, the validator's curves with a
 * class picker, the confusion matrix with its normalized toggle, and the validation images with
 * ground truth and predictions side by side.
 */
import {
  IClassMetrics,
  IConfusionMatrix,
  ICurve,
  IDetection,
  ITaskTable,
  IValImage,
  MaybeNumber,
  getWorkspaceLocation,
  workspaceFileUrl
} from './api';
import { LineChart, PALETTE } from './charts';
import { Heatmap } from './heatmap';
import { relativePaths } from './consoletext';
import { el } from './format';
import { messageOf } from './notify';

const SVG = 'http://www.w3.org/2000/svg';

/** `mask mAP50-95` for `metrics/mAP50-95(M)`: the task table's label, else the bare key. */
export function metricLabel(key: string, tasks: ITaskTable | null): string {
  return tasks?.metric_labels?.[key] ?? key.replace(/^metrics\//, '');
}

/** A metric value with three decimals, or an em dash when unknown. */
export function metricText(value: MaybeNumber | undefined): string {
  return value === null || value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(3);
}

/** The per-class table: class, images, instances and each metric the validator reported. */
export function classTable(rows: IClassMetrics[], tasks: ITaskTable | null): HTMLElement {
  const keys: string[] = [];
  for (const row of rows) {
    for (const key of Object.keys(row.metrics)) {
      if (!keys.includes(key)) {
        keys.push(key);
      }
    }
  }
  const table = el('table', 'jp-yolo-Table jp-yolo-Results-classes');
  const head = table.createTHead().insertRow();
  for (const title of ['class', 'images', 'instances', ...keys.map(k => metricLabel(k, tasks))]) {
    head.append(el('th', '', title));
  }
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    tr.dataset.class = row.name;
    tr.insertCell().textContent = row.name;
    tr.insertCell().textContent = row.images === null ? '—' : String(row.images);
    tr.insertCell().textContent = row.instances === null ? '—' : String(row.instances);
    for (const key of keys) {
      const cell = tr.insertCell();
      cell.textContent = metricText(row.metrics[key]);
      cell.className = 'jp-yolo-mod-number';
    }
  }
  return table;
}

/** The validator's curves of one kind (box, mask, pose) with a class picker; mean drawn bold. */
export class CurvesPart {
  readonly node = el('div', 'jp-yolo-Results-curves');
  private readonly picker = el('select', 'jp-yolo-Results-classPicker');
  private readonly kindPicker = el('select', 'jp-yolo-Results-kindPicker');
  private readonly grid = el('div', 'jp-yolo-Results-chartGrid');
  private curves: ICurve[] = [];

  constructor() {
    const bar = el('div', 'jp-yolo-Results-toolbar');
    const classLabel = el('label', '', 'Classes ');
    classLabel.append(this.picker);
    const kindLabel = el('label', '', 'Of ');
    kindLabel.append(this.kindPicker);
    bar.append(classLabel, kindLabel);
    this.node.append(bar, this.grid);
    this.picker.addEventListener('change', () => this.draw());
    this.kindPicker.addEventListener('change', () => this.draw());
  }

  update(curves: ICurve[]): void {
    this.curves = curves;
    const kinds = [...new Set(curves.map(c => c.kind))];
    setOptions(
      this.kindPicker,
      kinds.map(k => [k, KIND_NAMES[k] ?? k])
    );
    this.kindPicker.parentElement!.hidden = kinds.length < 2;
    const names = [...new Set(curves.flatMap(c => Object.keys(c.per_class)))];
    setOptions(this.picker, [
      ['*', 'all classes (each)'],
      ['', 'mean only'],
      ...names.map(n => [n, n] as [string, string])
    ]);
    this.draw();
  }

  private draw(): void {
    const kind = this.kindPicker.value || this.curves[0]?.kind;
    const choice = this.picker.value;
    const charts = this.curves
      .filter(c => c.kind === kind)
      .map(curve => {
        const chart = new LineChart({
          title: `${curve.name} curve`,
          xLabel: curve.x_label,
          yLabel: curve.y_label,
          xRange: [0, 1],
          yRange: [0, 1],
          width: 360,
          height: 240
        });
        const names = Object.keys(curve.per_class);
        const shown = choice === '*' ? names : names.filter(n => n === choice);
        chart.draw([
          ...shown.map(name => ({
            name,
            color: PALETTE[names.indexOf(name) % PALETTE.length],
            x: curve.x,
            y: curve.per_class[name]
          })),
          {
            name: 'all classes (mean)',
            color: 'var(--jp-ui-font-color1)',
            x: curve.x,
            y: curve.mean,
            bold: true
          }
        ]);
        chart.node.dataset.curve = curve.name;
        return chart.node;
      });
    this.grid.replaceChildren(...charts);
  }
}

const KIND_NAMES: Record<string, string> = { B: 'boxes', M: 'masks', P: 'poses' };

/** The confusion matrix as a heatmap of counts, with a toggle to normalize each true class. */
export class ConfusionPart {
  readonly node = el('div', 'jp-yolo-Results-confusion');
  private readonly toggle = el('input');
  private readonly heatmap = new Heatmap();
  private matrix: IConfusionMatrix | null = null;

  constructor() {
    this.toggle.type = 'checkbox';
    this.toggle.className = 'jp-yolo-Results-normalize';
    const label = el('label', 'jp-yolo-Results-toolbar jp-yolo-mod-tight');
    label.append(this.toggle, document.createTextNode(' normalized (share of each true class)'));
    this.node.append(label, this.heatmap.node);
    this.toggle.addEventListener('change', () => this.draw());
  }

  update(matrix: IConfusionMatrix): void {
    this.matrix = matrix;
    this.draw();
  }

  private draw(): void {
    if (this.matrix) {
      this.heatmap.draw(this.matrix.names, this.matrix.names, this.matrix.matrix, {
        rowLabel: 'predicted',
        columnLabel: 'true',
        normalize: this.toggle.checked
      });
    }
  }
}

let serverPath: Promise<string | null> | null = null;

/** The workspace's place in the server root, read once (null: outside it). */
function workspacePath(): Promise<string | null> {
  serverPath ??= getWorkspaceLocation().then(
    location => location.server_path,
    error => {
      serverPath = null;
      throw error;
    }
  );
  return serverPath;
}

/** Validation images: ground truth and predictions side by side, boxes with readable labels. */
export class ImagesPart {
  readonly node = el('div', 'jp-yolo-Results-images');
  private urls: string[] = [];
  /** Bumped by every update and by dispose: an older update's images are thrown away. */
  private generation = 0;

  async update(images: IValImage[]): Promise<void> {
    this.dispose();
    const generation = this.generation;
    let root: string | null;
    try {
      root = await workspacePath();
    } catch (error) {
      if (generation === this.generation) {
        this.node.replaceChildren(
          el('p', 'jp-yolo-Report-error', `The images cannot be shown: ${messageOf(error)}`)
        );
      }
      return;
    }
    const urls: string[] = [];
    const items = await Promise.all(images.map(image => this.item(image, root, urls)));
    if (generation !== this.generation) {
      // a newer update or a dispose came meanwhile: these URLs would never be released
      revokeAll(urls);
      return;
    }
    this.urls = urls;
    this.node.replaceChildren(...items);
  }

  /** Release the images' object URLs (and those of an update still loading). */
  dispose(): void {
    this.generation += 1;
    revokeAll(this.urls);
    this.urls = [];
  }

  private async item(image: IValImage, root: string | null, urls: string[]): Promise<HTMLElement> {
    const figure = el('figure', 'jp-yolo-ValImage');
    figure.dataset.image = image.image;
    let url: string | null = null;
    let problem = '';
    if (root === null) {
      problem = 'the workspace is outside the server root';
    } else {
      try {
        url = await workspaceFileUrl(root, image.image);
        urls.push(url);
      } catch (error) {
        problem = messageOf(error);
      }
    }
    const pair = el('div', 'jp-yolo-ValImage-pair');
    pair.append(
      side('truth', image, image.truth, url, image.truth_class ? [image.truth_class] : null),
      side('prediction', image, image.predicted, url, image.predicted_classes ?? null)
    );
    const caption = el('figcaption', '', image.image.split('/').pop() ?? image.image);
    caption.title = image.image;
    figure.append(pair, caption);
    if (problem) {
      figure.append(el('p', 'jp-yolo-Report-error', `Not shown: ${problem}`));
    }
    return figure;
  }
}

function revokeAll(urls: string[]): void {
  for (const url of urls) {
    URL.revokeObjectURL(url);
  }
}

function side(
  which: string,
  image: IValImage,
  detections: IDetection[],
  url: string | null,
  classes: string[] | null
): HTMLElement {
  const node = el('div', `jp-yolo-ValImage-side jp-yolo-mod-${which}`);
  node.dataset.side = which;
  const stage = el('div', 'jp-yolo-ValImage-stage');
  stage.style.aspectRatio = `${image.width} / ${image.height}`;
  if (url) {
    const img = el('img');
    img.src = url;
    img.alt = `${which} of ${image.image}`;
    stage.append(img);
  }
  const overlay = document.createElementNS(SVG, 'svg');
  overlay.setAttribute('viewBox', `0 0 ${image.width} ${image.height}`);
  overlay.setAttribute('preserveAspectRatio', 'none');
  overlay.setAttribute('class', 'jp-yolo-ValImage-overlay');
  const scale = Math.max(image.width, image.height) / 320;
  for (const detection of detections) {
    overlay.append(drawDetection(detection, scale));
  }
  overlay.dataset.boxes = String(detections.length);
  stage.append(overlay);
  const label = classes
    ? `${which}: ${classes.slice(0, 3).join(', ')}`
    : `${which} (${detections.length})`;
  node.append(el('div', 'jp-yolo-ValImage-label', label), stage);
  return node;
}

/** One box (or polygon / rotated box) with a label on a filled tag: readable on any background. */
function drawDetection(d: IDetection, scale: number): SVGGElement {
  const g = document.createElementNS(SVG, 'g');
  const color = PALETTE[d.cls % PALETTE.length];
  const stroke = String(2 * scale);
  const outline = d.corners ?? d.polygon;
  const [x1, y1, x2, y2] = d.box_xyxy.map(v => v ?? 0);
  let shape: SVGElement;
  if (outline && outline.length > 2) {
    shape = document.createElementNS(SVG, 'polygon');
    shape.setAttribute('points', outline.map(p => `${p[0]},${p[1]}`).join(' '));
  } else {
    shape = document.createElementNS(SVG, 'rect');
    shape.setAttribute('x', String(x1));
    shape.setAttribute('y', String(y1));
    shape.setAttribute('width', String(Math.max(0, x2 - x1)));
    shape.setAttribute('height', String(Math.max(0, y2 - y1)));
  }
  shape.setAttribute('fill', 'none');
  shape.setAttribute('stroke', color);
  shape.setAttribute('stroke-width', stroke);
  // a dark halo under the line keeps it visible on a shape of the same colour
  const halo = shape.cloneNode() as SVGElement;
  halo.setAttribute('stroke', 'rgba(0,0,0,0.6)');
  halo.setAttribute('stroke-width', String(4 * scale));
  g.append(halo, shape);
  const text = d.conf === null ? d.name : `${d.name} ${d.conf.toFixed(2)}`;
  const size = 11 * scale;
  const width = text.length * size * 0.6 + 4 * scale;
  const top = y1 - size - 3 * scale >= 0 ? y1 - size - 3 * scale : y1;
  const tag = document.createElementNS(SVG, 'rect');
  tag.setAttribute('x', String(x1));
  tag.setAttribute('y', String(top));
  tag.setAttribute('width', String(width));
  tag.setAttribute('height', String(size + 3 * scale));
  tag.setAttribute('fill', color);
  const label = document.createElementNS(SVG, 'text');
  label.setAttribute('x', String(x1 + 2 * scale));
  label.setAttribute('y', String(top + size));
  label.setAttribute('font-size', String(size));
  label.setAttribute('fill', '#fff');
  label.setAttribute('class', 'jp-yolo-ValImage-tag');
  label.textContent = text;
  g.append(tag, label);
  return g;
}

function setOptions(select: HTMLSelectElement, options: [string, string][]): void {
  const keep = select.value;
  const had = select.dataset.options !== undefined;
  const key = JSON.stringify(options);
  if (select.dataset.options !== key) {
    select.dataset.options = key;
    select.replaceChildren(
      ...options.map(([value, text]) => {
        const option = el('option', '', text);
        option.value = value;
        return option;
      })
    );
    if (had && options.some(([value]) => value === keep)) {
      select.value = keep;
    }
  }
}

/** A job parameter as text (`—` when the job does not have it). */
export function paramText(value: unknown): string {
  if (value === undefined || value === null) {
    return '—';
  }
  return typeof value === 'string' ? relativePaths(value) : JSON.stringify(value);
}
