/**
 * The run results view of a train or val job, in a main area tab opened from the jobs sidebar:
 * summary (status, task, dataset, start, duration, best epoch and its headline metrics, final
 * metrics), the metric and loss curves per epoch, the per-class table, the validator's PR / F1
 * curves, the confusion matrix, validation images with truth and predictions, system usage over
 * the run and the console (log tail).
 *
 * Everything comes from `GET /yolo/jobs/{id}/results`, the job's `epoch` events and its log.
 * While the job may still change the view reads them again every few seconds (a lumino Poll,
 * standing by while hidden, disposed with the view); a job without results yet says so.
 */
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import {
  IEpochEvent,
  IEpochSummary,
  IRunGpuUsage,
  IRunResults,
  ITaskTable,
  IUsageSample,
  YoloApiError,
  runEpochs,
  getLog,
  getResults,
  isLive,
  tasksOnce
} from './api';
import { LineChart, PALETTE } from './charts';
import { el, formatBytes, formatDuration } from './format';
import { consoleText } from './consoletext';
import { messageOf } from './notify';
import {
  ConfusionPart,
  CurvesPart,
  ImagesPart,
  classTable,
  metricLabel,
  metricText,
  paramText
} from './resultparts';
import { ITuneResult, TunePart, getTune } from './tune';

const LIVE_INTERVAL_MS = 3000;
const IDLE_INTERVAL_MS = 60_000;

/** When a job's record says it started, as a person reads it. */
export function formatTime(seconds: number | null | undefined): string {
  return seconds ? new Date(seconds * 1000).toLocaleString() : '—';
}

/** How long a job ran (up to now while it runs), or '' before it started. */
export function runDuration(started: number | null, ended: number | null): string {
  if (!started) {
    return '';
  }
  return formatDuration((ended ?? Date.now() / 1000) - started);
}

export class ResultsView extends Widget {
  private readonly titleNode = el('h2', 'jp-yolo-Results-title');
  private readonly statusNode = el('span', 'jp-yolo-JobRow-status');
  private readonly message = el('p', 'jp-yolo-Results-message');
  private readonly summary = el('div', 'jp-yolo-Results-summary');
  private readonly epochCharts = el('div', 'jp-yolo-Results-chartGrid');
  private readonly classes = el('div', 'jp-yolo-Results-classWrap');
  private readonly curves = new CurvesPart();
  private readonly confusion = new ConfusionPart();
  private readonly images = new ImagesPart();
  private readonly trials = new TunePart();
  private readonly usageCharts = el('div', 'jp-yolo-Results-chartGrid');
  private readonly console = el('pre', 'jp-yolo-Log-text jp-yolo-Results-console');
  private readonly sections = new Map<string, HTMLElement>();
  private readonly poll: Poll;
  private tasks: ITaskTable | null = null;
  private finalKey = '';
  private epochKey = '';

  /**
   * `dataset` is the job's dataset as the job list names it (its parameters hold the resolved
   * data.yaml path).
   */
  constructor(
    readonly jobId: string,
    private readonly datasetName: string | null = null
  ) {
    super();
    this.addClass('jp-yolo-Results');
    this.node.dataset.jobId = jobId;
    const header = el('header', 'jp-yolo-Results-header');
    const refresh = el('button', 'jp-yolo-Button', 'Refresh');
    refresh.title = 'Read the results from the server now';
    refresh.addEventListener('click', () => void this.poll.refresh());
    header.append(this.titleNode, this.statusNode, refresh);
    this.node.append(header, this.message);
    this.section('summary', 'Summary', this.summary);
    this.section('tune', 'Trials', this.trials.node);
    this.section('epochs', 'Metrics and losses per epoch', this.epochCharts);
    this.section('classes', 'Per-class metrics', this.classes);
    this.section('curves', 'Curves', this.curves.node);
    this.section('confusion', 'Confusion matrix', this.confusion.node);
    this.section('images', 'Validation images: ground truth | prediction', this.images.node);
    this.section('usage', 'System usage', this.usageCharts);
    this.section('console', 'Console', this.console);
    this.poll = new Poll({
      name: `jupyter-yolo:results:${jobId}`,
      factory: () => this.load(),
      frequency: { interval: LIVE_INTERVAL_MS, backoff: true, max: 60_000 },
      standby: () => document.visibilityState === 'hidden' || !this.isVisible
    });
  }

  override dispose(): void {
    this.poll.dispose();
    this.images.dispose();
    super.dispose();
  }

  /** Read the results, epochs and log now and draw them. */
  async load(): Promise<void> {
    this.tasks = this.tasks ?? (await tasksOnce());
    let results: IRunResults;
    try {
      results = await getResults(this.jobId);
    } catch (error) {
      const gone = error instanceof YoloApiError && error.status === 404;
      this.showMessage(
        gone
          ? `Job ${this.jobId} has no results: ${messageOf(error)}`
          : `The results cannot be read: ${messageOf(error)}`
      );
      throw error; // the poll backs off
    }
    const [epochs, log, tune] = await Promise.all([
      runEpochs(this.jobId, results).catch(() => [] as IEpochEvent[]),
      getLog(this.jobId).catch(error => `The log cannot be read: ${messageOf(error)}`),
      results.kind === 'tune' ? getTune(this.jobId, results).catch(() => null) : null
    ]);
    this.render(results, epochs, log);
    this.renderTune(results, tune);
    const live = isLive(results.status, this.tasks);
    const interval = live ? LIVE_INTERVAL_MS : IDLE_INTERVAL_MS;
    if (this.poll.frequency.interval !== interval) {
      this.poll.frequency = { ...this.poll.frequency, interval };
    }
  }

  private section(key: string, title: string, body: HTMLElement): void {
    const node = el('section', 'jp-yolo-Results-section');
    node.dataset.section = key;
    node.append(el('h3', '', title), body);
    this.sections.set(key, node);
    this.node.append(node);
  }

  private showSection(key: string, visible: boolean): void {
    this.sections.get(key)!.hidden = !visible;
  }

  private showMessage(text: string): void {
    this.message.textContent = text;
    this.message.hidden = !text;
  }

  private render(r: IRunResults, epochs: IEpochEvent[], log: string): void {
    const name =
      r.name || `${r.kind} ${r.params.model === undefined ? '' : paramText(r.params.model)}`.trim();
    this.titleNode.textContent = `${name} · job ${r.job_id}`;
    this.statusNode.textContent = r.status;
    this.statusNode.className = `jp-yolo-JobRow-status jp-yolo-mod-${r.status}`;
    this.node.dataset.status = r.status;
    const live = isLive(r.status, this.tasks);
    if (r.final) {
      this.showMessage('');
    } else if (live) {
      this.showMessage(
        r.last
          ? `The run is going on: the per-class metrics, curves, confusion matrix and validation images come with its final validation.`
          : `No results yet: the job is ${r.status}. This view fills in as it runs.`
      );
    } else {
      this.showMessage(
        `Job ${r.status} without a final validation: only what its epochs and log say is shown.`
      );
    }
    this.summary.replaceChildren(this.summaryTable(r));
    this.renderEpochs(r, epochs);
    this.renderFinal(r);
    this.renderUsage(r.usage);
    this.showSection('console', true);
    const text = consoleText(log, this.jobId) || '(the log is empty)';
    if (text !== this.console.textContent) {
      const follow =
        this.console.scrollTop + this.console.clientHeight >= this.console.scrollHeight - 20;
      this.console.textContent = text;
      if (follow) {
        this.console.scrollTop = this.console.scrollHeight;
      }
    }
  }

  private summaryTable(r: IRunResults): HTMLElement {
    const headline = metricLabel(r.headline, this.tasks);
    const rows: [string, string][] = [
      ['status', r.status],
      ['task', r.task],
      ['dataset', this.datasetName ?? paramText(r.params.data)],
      ['model', paramText(r.params.model)],
      ['started', r.started ? formatTime(r.started) : `not yet (created ${formatTime(r.created)})`],
      ['duration', runDuration(r.started, r.ended) || '—']
    ];
    const epochText = (e: IEpochSummary | null): string =>
      e
        ? `${e.epoch} of ${r.epochs || '?'} · ${headline} ${metricText(e.metrics[r.headline])}`
        : '—';
    if (r.kind === 'train') {
      rows.push(['best epoch', epochText(r.best)], ['last epoch', epochText(r.last)]);
    }
    const table = el('table', 'jp-yolo-Table');
    for (const [key, value] of rows) {
      const row = table.insertRow();
      row.dataset.key = key;
      row.insertCell().textContent = key;
      row.insertCell().textContent = value;
    }
    const node = el('div', 'jp-yolo-Results-summaryGrid');
    node.append(table);
    const metrics = r.final?.metrics ?? r.best?.metrics;
    if (metrics && Object.keys(metrics).length) {
      const box = el('div', 'jp-yolo-Results-metrics');
      box.append(el('h4', '', r.final ? 'Final validation' : 'Best epoch'));
      for (const [key, value] of Object.entries(metrics)) {
        const tile = el('div', 'jp-yolo-Results-metric');
        tile.classList.toggle('jp-yolo-mod-headline', key === r.headline);
        tile.append(
          el('span', 'jp-yolo-Results-metricValue', metricText(value)),
          el('span', '', metricLabel(key, this.tasks))
        );
        box.append(tile);
      }
      const speed = r.final?.speed_ms;
      if (speed && Object.keys(speed).length) {
        const parts = Object.entries(speed)
          .filter(([, v]) => v !== null)
          .map(([k, v]) => `${k} ${(v as number).toFixed(1)} ms`);
        box.append(el('p', 'jp-yolo-Results-speed', `per image: ${parts.join(' · ')}`));
      }
      node.append(box);
    }
    return node;
  }

  /** A tune job's trials: table, chart with the best starred, "Train with the best". */
  private renderTune(r: IRunResults, tune: ITuneResult | null): void {
    this.showSection('tune', r.kind === 'tune');
    if (r.kind !== 'tune') {
      return;
    }
    const search = r.params.tune as { iterations?: unknown } | undefined;
    const iterations = search?.iterations ?? r.params.iterations;
    this.trials.update(tune, typeof iterations === 'number' ? iterations : null);
    const live = isLive(r.status, this.tasks);
    this.showMessage(
      live
        ? 'The search is going on: the trials fill in as they run.'
        : tune
          ? ''
          : `Job ${r.status} without trials.`
    );
  }

  private renderEpochs(r: IRunResults, epochs: IEpochEvent[]): void {
    const key = `${epochs.length}:${epochs[epochs.length - 1]?.seq ?? 0}`;
    this.showSection('epochs', epochs.length > 0);
    if (key === this.epochKey) {
      return;
    }
    this.epochKey = key;
    const x = epochs.map(e => e.epoch);
    const metricKeys = [...new Set(epochs.flatMap(e => Object.keys(e.metrics ?? {})))];
    const metrics = new LineChart({
      title: 'Metrics',
      xLabel: 'epoch',
      integerX: true,
      yLabel: 'value'
    });
    metrics.draw(
      metricKeys.map((k, i) => ({
        name: metricLabel(k, this.tasks),
        color: PALETTE[i % PALETTE.length],
        x,
        y: epochs.map(e => e.metrics?.[k] ?? null),
        bold: k === r.headline
      }))
    );
    const lossKeys = [...new Set(epochs.flatMap(e => Object.keys(e.loss ?? {})))];
    const losses = new LineChart({
      title: 'Losses (dashed: validation)',
      xLabel: 'epoch',
      integerX: true,
      yLabel: 'loss'
    });
    losses.draw(
      lossKeys
        .flatMap((k, i) => [
          {
            name: `train ${k}`,
            color: PALETTE[i % PALETTE.length],
            x,
            y: epochs.map(e => e.loss?.[k] ?? null)
          },
          {
            name: `val ${k}`,
            color: PALETTE[i % PALETTE.length],
            x,
            y: epochs.map(e => e.val_loss?.[k] ?? null),
            dashed: true
          }
        ])
        .filter(s => s.y.some(v => v !== null))
    );
    metrics.node.dataset.chart = 'metrics';
    losses.node.dataset.chart = 'losses';
    this.epochCharts.replaceChildren(metrics.node, losses.node);
  }

  private renderFinal(r: IRunResults): void {
    const final = r.final;
    const key = final
      ? JSON.stringify([final.metrics, final.per_class.length, final.val_images.map(i => i.image)])
      : '';
    this.showSection('classes', !!final && final.per_class.length > 0);
    this.showSection('curves', !!final && final.curves.length > 0);
    this.showSection('confusion', !!final?.confusion);
    this.showSection('images', !!final && final.val_images.length > 0);
    if (!final || key === this.finalKey) {
      return;
    }
    this.finalKey = key;
    this.classes.replaceChildren(classTable(final.per_class, this.tasks));
    this.curves.update(final.curves);
    if (final.confusion) {
      this.confusion.update(final.confusion);
    }
    void this.images.update(final.val_images);
  }

  private renderUsage(samples: IUsageSample[]): void {
    this.showSection('usage', samples.length > 0);
    if (!samples.length) {
      return;
    }
    const t0 = samples[0].time ?? 0;
    const x = samples.map((s, i) => (s.time !== undefined ? (s.time - t0) / 60 : (i * 5) / 60));
    const gpus = [...new Set(samples.flatMap(s => s.gpus.map(g => g.index)))];
    const gpu = (s: IUsageSample, index: number): IRunGpuUsage | undefined =>
      s.gpus.find(g => g.index === index);
    const percent = new LineChart({
      title: 'CPU and GPU use',
      xLabel: 'minutes',
      yLabel: '%',
      yRange: [0, 100]
    });
    percent.draw([
      { name: 'CPU %', color: PALETTE[0], x, y: samples.map(s => s.cpu_percent) },
      ...gpus.map((index, i) => ({
        name: `GPU ${index} util %`,
        color: PALETTE[(i + 2) % PALETTE.length],
        x,
        y: samples.map(s => gpu(s, index)?.util_percent ?? null)
      }))
    ]);
    const gib = 1024 ** 3;
    const toGiB = (v: number | null | undefined): number | null =>
      v === null || v === undefined ? null : v / gib;
    const memory = new LineChart({
      title: `Memory (GiB)${samples[0].memory_limit_bytes ? `, limit ${formatBytes(samples[0].memory_limit_bytes)}` : ''}`,
      xLabel: 'minutes',
      yLabel: 'GiB'
    });
    memory.draw([
      { name: 'RAM', color: PALETTE[1], x, y: samples.map(s => toGiB(s.memory_bytes)) },
      ...gpus.map((index, i) => ({
        name: `GPU ${index} memory`,
        color: PALETTE[(i + 3) % PALETTE.length],
        x,
        y: samples.map(s => toGiB(gpu(s, index)?.memory_used_bytes))
      }))
    ]);
    percent.node.dataset.chart = 'usage-percent';
    memory.node.dataset.chart = 'usage-memory';
    this.usageCharts.replaceChildren(percent.node, memory.node);
  }
}
