/**
 * The trials of a hyperparameter search (a `tune` job) in the results view: the trials table
 * (trial, status, each searched parameter, the metric, fitness; the best row starred), a scatter
 * of each parameter against the metric with the best trial starred, and "Train with the best",
 * which posts the job's `best_request` as a `train` job.
 *
 * Everything comes from the server: the trials table is the results' `tune` (or, from a server
 * that has none there, the ended job's `result`, a TuneResult).
 */
import { ServerConnection } from '@jupyterlab/services';

import { IRunResults, MaybeNumber, YoloApiError, apiUrl, getJob } from './api';
import { svg } from './charts';
import { el } from './format';
import { messageOf } from './notify';

/** One row of the trials table (the contract's TrialRecord). */
export interface ITrialRecord {
  trial: number;
  status: string;
  params: Record<string, number>;
  epochs_done: number;
  metrics: Record<string, MaybeNumber>;
  fitness: MaybeNumber;
  history: MaybeNumber[];
  error: string | null;
}

/** A tune job's table, best trial and the training request with its parameters (TuneResult). */
export interface ITuneResult {
  metric: string;
  space: Record<string, number[]>;
  trials: ITrialRecord[];
  best: ITrialRecord | null;
  best_request: Record<string, unknown> | null;
  executor: string;
}

const STAR = '★';
const BEST_COLOR = '#d62728';
const TRIAL_COLOR = '#1f77b4';
const MAX_CHARTS = 6;

function asTune(value: unknown): ITuneResult | null {
  if (Array.isArray(value)) {
    const trials = value as ITrialRecord[];
    return { metric: '', space: {}, trials, best: null, best_request: null, executor: '' };
  }
  const tune = value as Partial<ITuneResult> | null | undefined;
  return tune && Array.isArray(tune.trials) ? (tune as ITuneResult) : null;
}

/** The tune job's trials: the results' `tune`, else the job's own result. */
export async function getTune(jobId: string, results: IRunResults): Promise<ITuneResult | null> {
  const fromResults = asTune((results as IRunResults & { tune?: unknown }).tune);
  if (fromResults && fromResults.best_request !== null && fromResults.best_request !== undefined) {
    return fromResults;
  }
  const job = (await getJob(jobId)) as unknown as { result?: unknown };
  return asTune(job.result) ?? fromResults;
}

/** Post a training request (`POST /yolo/jobs`, token or XSRF header as every API call). */
export async function startTraining(request: Record<string, unknown>): Promise<{ id: string }> {
  const body = { ...request, kind: 'train' };
  const response = await ServerConnection.makeRequest(
    apiUrl('yolo', 'jobs'),
    { method: 'POST', body: JSON.stringify(body) },
    ServerConnection.makeSettings()
  );
  const text = await response.text();
  let payload: { id?: string; message?: string } = {};
  try {
    payload = JSON.parse(text) as { id?: string; message?: string };
  } catch {
    // not JSON: the status says it
  }
  if (!response.ok) {
    throw new YoloApiError(payload.message || `${response.status} ${response.statusText}`, null);
  }
  return { id: String(payload.id) };
}

/** `box mAP50-95` for `metrics/mAP50-95(B)` (as the contract's metric_label). */
export function metricName(key: string): string {
  const text = key.replace(/^metrics\//, '');
  for (const [mark, word] of [
    ['(B)', 'box '],
    ['(M)', 'mask '],
    ['(P)', 'pose ']
  ]) {
    if (text.endsWith(mark)) {
      return word + text.slice(0, -mark.length);
    }
  }
  return text.replace(/_/g, ' ');
}

function num(value: MaybeNumber | undefined): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** A number as the table shows it (small and large ones in e-notation). */
export function numText(value: MaybeNumber | undefined): string {
  const v = num(value);
  if (v === null) {
    return '—';
  }
  return v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)
    ? v.toExponential(2)
    : String(+v.toPrecision(4));
}

/** The searched parameters: the space's, then any other a trial reports. */
function paramNames(tune: ITuneResult): string[] {
  const names = Object.keys(tune.space ?? {});
  for (const trial of tune.trials) {
    for (const key of Object.keys(trial.params ?? {})) {
      if (!names.includes(key)) {
        names.push(key);
      }
    }
  }
  return names;
}

function metricOf(tune: ITuneResult): string {
  if (tune.metric) {
    return tune.metric;
  }
  for (const trial of tune.trials) {
    const key = Object.keys(trial.metrics ?? {}).find(k => k !== 'fitness');
    if (key) {
      return key;
    }
  }
  return 'metric';
}

/** The best trial: the result's own, else the highest fitness (then metric) so far. */
function bestOf(tune: ITuneResult, metric: string): ITrialRecord | null {
  if (tune.best) {
    return tune.trials.find(t => t.trial === tune.best!.trial) ?? tune.best;
  }
  let best: ITrialRecord | null = null;
  let bestScore = -Infinity;
  for (const trial of tune.trials) {
    const score = num(trial.fitness) ?? num(trial.metrics?.[metric]);
    if (score !== null && score > bestScore) {
      best = trial;
      bestScore = score;
    }
  }
  return best;
}

/** The trials section of a tune job's results view. */
export class TunePart {
  readonly node = el('div', 'jp-yolo-Tune');
  private readonly summary = el('p', 'jp-yolo-Tune-summary');
  private readonly tableBox = el('div', 'jp-yolo-Results-classWrap');
  private readonly charts = el('div', 'jp-yolo-Results-chartGrid jp-yolo-Tune-charts');
  private readonly trainButton = el('button', 'jp-yolo-Button jp-yolo-Tune-trainBest');
  private readonly message = el('p', 'jp-yolo-Tune-message');
  private key = '';
  private tune: ITuneResult | null = null;

  constructor() {
    this.trainButton.textContent = 'Train with the best';
    this.trainButton.title = "Start a full training with the best trial's parameters";
    this.trainButton.disabled = true;
    this.trainButton.addEventListener('click', () => void this.trainBest());
    this.message.hidden = true;
    const actions = el('div', 'jp-yolo-Tune-actions');
    actions.style.margin = '6px 0';
    actions.append(this.trainButton, this.message);
    this.node.append(this.summary, this.tableBox, this.charts, actions);
  }

  /** Show these trials (redrawn only when they changed). */
  update(tune: ITuneResult | null, iterations: number | null): void {
    this.tune = tune;
    this.trainButton.disabled = !tune?.best_request;
    const key = JSON.stringify(tune);
    if (key === this.key) {
      return;
    }
    this.key = key;
    if (!tune || !tune.trials.length) {
      this.summary.textContent = 'No trials yet.';
      this.tableBox.replaceChildren();
      this.charts.replaceChildren();
      this.node.dataset.trials = '0';
      return;
    }
    const metric = metricOf(tune);
    const best = bestOf(tune, metric);
    const names = paramNames(tune);
    const done = tune.trials.filter(t => t.status !== 'running').length;
    const total = iterations ?? tune.trials.length;
    this.summary.textContent =
      `${done} of ${total} trials done` +
      (best
        ? ` · best: trial ${best.trial}, ${metricName(metric)} ${numText(best.metrics?.[metric])}`
        : '');
    this.node.dataset.trials = String(tune.trials.length);
    this.node.dataset.best = best ? String(best.trial) : '';
    this.tableBox.replaceChildren(this.table(tune, names, metric, best));
    this.charts.replaceChildren(
      ...names.slice(0, MAX_CHARTS).map(name => this.scatter(tune, name, metric, best))
    );
  }

  private table(
    tune: ITuneResult,
    names: string[],
    metric: string,
    best: ITrialRecord | null
  ): HTMLElement {
    const table = el('table', 'jp-yolo-Table jp-yolo-Tune-trials');
    const head = table.createTHead().insertRow();
    for (const title of ['trial', 'status', ...names, metricName(metric), 'fitness']) {
      head.append(el('th', '', title));
    }
    const body = table.createTBody();
    for (const trial of [...tune.trials].sort((a, b) => a.trial - b.trial)) {
      const row = body.insertRow();
      row.dataset.trial = String(trial.trial);
      const isBest = best !== null && trial.trial === best.trial;
      if (isBest) {
        row.classList.add('jp-yolo-mod-best');
        row.style.background = 'rgba(255, 196, 0, 0.25)';
        row.style.fontWeight = '600';
      }
      row.insertCell().textContent = isBest ? `${trial.trial} ${STAR} best` : String(trial.trial);
      const status = row.insertCell();
      status.textContent = trial.status;
      if (trial.error) {
        status.title = trial.error;
      }
      const values = [...names.map(n => trial.params?.[n]), trial.metrics?.[metric], trial.fitness];
      for (const value of values) {
        const cell = row.insertCell();
        cell.textContent = numText(value);
        cell.className = 'jp-yolo-mod-number';
      }
    }
    return table;
  }

  /** One parameter against the metric: each trial a labelled dot, the best a red star. */
  private scatter(
    tune: ITuneResult,
    name: string,
    metric: string,
    best: ITrialRecord | null
  ): HTMLElement {
    const width = 240;
    const height = 200;
    const m = { left: 44, right: 10, top: 10, bottom: 32 };
    const points = tune.trials
      .map(t => ({ t, x: num(t.params?.[name]), y: num(t.metrics?.[metric]) }))
      .filter((p): p is { t: ITrialRecord; x: number; y: number } => p.x !== null && p.y !== null);
    const [x0, x1] = spread(points.map(p => p.x));
    const [y0, y1] = metricSpread(points.map(p => p.y));
    const sx = (x: number): number => m.left + ((x - x0) / (x1 - x0)) * (width - m.left - m.right);
    const sy = (y: number): number =>
      m.top + (1 - (y - y0) / (y1 - y0)) * (height - m.top - m.bottom);
    const figure = el('figure', 'jp-yolo-Chart');
    figure.dataset.chart = `tune-${name}`;
    figure.dataset.points = String(points.length);
    const caption = `${metricName(metric)} by ${name}`;
    figure.append(el('figcaption', 'jp-yolo-Chart-title', caption));
    const plot = svg('svg', {
      class: 'jp-yolo-Chart-plot',
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': caption
    });
    const parts: SVGElement[] = [
      svg('rect', {
        class: 'jp-yolo-Chart-frame',
        x: m.left,
        y: m.top,
        width: width - m.left - m.right,
        height: height - m.top - m.bottom
      })
    ];
    const label = (x: number, y: number, text: string, anchor = 'middle'): void => {
      const node = svg('text', { class: 'jp-yolo-Chart-tick', x, y, 'text-anchor': anchor });
      node.textContent = text;
      parts.push(node);
    };
    label(m.left - 4, sy(y0) + 3, numText(y0), 'end');
    label(m.left - 4, sy(y1) + 3, numText(y1), 'end');
    label(sx(x0), height - m.bottom + 13, numText(x0), 'start');
    label(sx(x1), height - m.bottom + 13, numText(x1), 'end');
    const axis = svg('text', {
      class: 'jp-yolo-Chart-axis',
      x: (m.left + width - m.right) / 2,
      y: height - 4,
      'text-anchor': 'middle'
    });
    axis.textContent = name;
    parts.push(axis);
    // the best last, so a trial at the same place does not cover its star
    const isBestPoint = (p: { t: ITrialRecord }): boolean =>
      best !== null && p.t.trial === best.trial;
    points.sort((a, b) => Number(isBestPoint(a)) - Number(isBestPoint(b)));
    for (const p of points) {
      const isBest = isBestPoint(p);
      const cx = sx(p.x);
      const cy = sy(p.y);
      let marker: SVGElement;
      if (isBest) {
        marker = svg('polygon', { class: 'jp-yolo-Tune-best', points: starPoints(cx, cy, 9) });
        marker.style.fill = BEST_COLOR;
      } else {
        marker = svg('circle', { class: 'jp-yolo-Tune-dot', cx, cy, r: 4.5 });
        marker.style.fill = TRIAL_COLOR;
        marker.style.opacity = '0.8';
      }
      marker.dataset.trial = String(p.t.trial);
      const title = svg('title');
      title.textContent = `trial ${p.t.trial}: ${name} ${numText(p.x)}, ${metricName(metric)} ${numText(p.y)}`;
      marker.append(title);
      parts.push(marker);
      label(cx, cy - 10, String(p.t.trial));
    }
    plot.replaceChildren(...parts);
    figure.append(plot);
    return figure;
  }

  private async trainBest(): Promise<void> {
    const request = this.tune?.best_request;
    if (!request) {
      return;
    }
    this.trainButton.disabled = true;
    try {
      const job = await startTraining(request);
      const best = this.tune?.best;
      this.showMessage(
        `Started training job ${job.id} with ${best ? `trial ${best.trial}'s` : 'the best'} parameters (see the jobs sidebar).`
      );
      this.node.dataset.trainJob = job.id;
    } catch (error) {
      this.showMessage(`The training could not start: ${messageOf(error)}`);
    } finally {
      this.trainButton.disabled = !this.tune?.best_request;
    }
  }

  private showMessage(text: string): void {
    this.message.textContent = text;
    this.message.hidden = !text;
  }
}

function spread(values: number[]): [number, number] {
  if (!values.length) {
    return [0, 1];
  }
  const low = Math.min(...values);
  const high = Math.max(...values);
  const pad = (high - low) * 0.08 || Math.abs(low) * 0.1 || 0.5;
  return [low - pad, high + pad];
}

/** The metric axis: from 0 for metrics never negative, a unit range when all are equal. */
function metricSpread(values: number[]): [number, number] {
  if (!values.length) {
    return [0, 1];
  }
  const high = Math.max(...values);
  const low = Math.min(0, ...values);
  const span = high - low;
  if (span <= 0) {
    const unit = Math.abs(high) || 1;
    return [low - 0.05 * unit, high + unit];
  }
  return [low - 0.05 * span, high + 0.15 * span];
}

function starPoints(cx: number, cy: number, r: number): string {
  const out: string[] = [];
  for (let i = 0; i < 10; i++) {
    const radius = i % 2 === 0 ? r : r * 0.45;
    const angle = (Math.PI / 5) * i - Math.PI / 2;
    out.push(
      `${(cx + radius * Math.cos(angle)).toFixed(1)},${(cy + radius * Math.sin(angle)).toFixed(1)}`
    );
  }
  return out.join(' ');
}
