/**
 * One job in the "YOLO jobs" sidebar: its name, task, status, start time and duration, progress
 * with the headline metric (labelled by the task table's short label), a loss sparkline, the
 * actions Stop, Resume, Results, Log and Folder, and a checkbox that picks it for comparison.
 */
import { IJob, ITaskTable, getEvents, isLive } from './api';
import { IJobPlacement, placementText, queueReason } from './cluster';
import { el, formatDuration, formatLoss, totalLoss } from './format';
import { messageOf } from './notify';
import { Series, Sparkline } from './sparkline';

/** What a row needs from the panel that holds it. */
export interface IRowHost {
  readonly tasks: ITaskTable | null;
  readonly readOnly: string | null;
  stop(row: JobRow): Promise<void>;
  resume(row: JobRow): Promise<void>;
  openLog(job: IJob): void;
  openFolder(job: IJob): Promise<void>;
  openResults(job: IJob): void;
  /** The row's comparison checkbox changed. */
  select(row: JobRow, selected: boolean): void;
}

/** Kinds of job with results to show and compare. */
export const RESULT_KINDS = ['train', 'val'];
/** Kinds of job with a results view (a tune job's trials) but nothing to compare. */
const VIEW_KINDS = [...RESULT_KINDS, 'tune'];

/** A start time as a person scans a list: `14:05` today, `Mar 3, 14:05` before. */
export function startText(seconds: number): string {
  const date = new Date(seconds * 1000);
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleString([], {
        month: 'short',
        day: 'numeric',
        hour: '2-digit',
        minute: '2-digit'
      });
}

/** One job in the list. */
export class JobRow {
  readonly node = el('li', 'jp-yolo-JobRow');
  private readonly titleNode = el('span', 'jp-yolo-JobRow-title');
  private readonly taskNode = el('span', 'jp-yolo-JobRow-task');
  private readonly statusNode = el('span', 'jp-yolo-JobRow-status');
  private readonly metaNode = el('div', 'jp-yolo-JobRow-meta');
  private readonly timeNode = el('div', 'jp-yolo-JobRow-time');
  private readonly check = el('input', 'jp-yolo-JobRow-select');
  private readonly bar = el('div', 'jp-yolo-JobRow-bar');
  private readonly barFill = el('div', 'jp-yolo-JobRow-barFill');
  private readonly progressNode = el('div', 'jp-yolo-JobRow-progress');
  private readonly lossNode = el('span', 'jp-yolo-JobRow-loss');
  private readonly chart = el('div', 'jp-yolo-JobRow-chart');
  private readonly errorNode = el('div', 'jp-yolo-JobRow-error');
  /** Where the job runs (executor, Ray node), on servers that have executors. */
  private readonly placementNode = el('span', 'jp-yolo-JobRow-placement');
  /** Why Ray has not placed a queued job yet, in Ray's words. */
  private readonly queueReasonNode = el('div', 'jp-yolo-JobRow-queueReason');
  private readonly stopButton = button('Stop', 'jp-yolo-JobRow-stop', STOP_TITLE);
  private readonly resumeButton = button('Resume', 'jp-yolo-JobRow-resume', RESUME_TITLE);
  private readonly logButton = button('Log', 'jp-yolo-JobRow-log', "Open the job's log");
  private readonly resultsButton = button(
    'Results',
    'jp-yolo-JobRow-results',
    "Show the run's results: metrics, curves, confusion matrix, images, usage and console"
  );
  private readonly folderButton = button(
    'Folder',
    'jp-yolo-JobRow-folder',
    "Show the job's results folder"
  );
  private readonly sparkline = new Sparkline(120, 24);
  private readonly series = new Series();
  private cursor = 0;
  private job: IJob;
  private busy = false;

  constructor(
    job: IJob,
    private readonly panel: IRowHost
  ) {
    this.job = job;
    this.node.dataset.jobId = job.id;
    const head = el('div', 'jp-yolo-JobRow-head');
    this.check.type = 'checkbox';
    this.check.title = 'Pick this run to compare it with others';
    this.check.setAttribute('aria-label', `compare job ${job.id}`);
    this.check.addEventListener('change', () => this.panel.select(this, this.check.checked));
    head.append(this.check, this.titleNode, this.taskNode, this.statusNode);
    this.bar.append(this.barFill);
    this.chart.append(this.sparkline.node, this.lossNode);
    const actions = el('div', 'jp-yolo-JobRow-actions');
    actions.append(
      this.stopButton,
      this.resumeButton,
      this.resultsButton,
      this.logButton,
      this.folderButton
    );
    this.node.append(
      head,
      this.timeNode,
      this.metaNode,
      this.queueReasonNode,
      this.bar,
      this.progressNode,
      this.chart,
      this.errorNode,
      actions
    );

    this.stopButton.addEventListener('click', () => void this.act(() => this.panel.stop(this)));
    this.resumeButton.addEventListener('click', () => void this.act(() => this.panel.resume(this)));
    this.logButton.addEventListener('click', () => this.panel.openLog(this.job));
    this.resultsButton.addEventListener('click', () => this.panel.openResults(this.job));
    this.folderButton.addEventListener('click', () => void this.panel.openFolder(this.job));
  }

  get id(): string {
    return this.job.id;
  }

  /** The job as last read. */
  get current(): IJob {
    return this.job;
  }

  /** Whether the row is picked for comparison. */
  get selected(): boolean {
    return this.check.checked;
  }

  set selected(value: boolean) {
    this.check.checked = value;
  }

  get live(): boolean {
    return isLive(this.job.status, this.panel.tasks);
  }

  /** Whether the server has events this row has not read. */
  get behind(): boolean {
    return this.job.progress.last_seq > this.cursor;
  }

  update(job: IJob): void {
    this.job = job;
    const p = job.progress;
    this.node.dataset.status = job.status;
    this.node.dataset.kind = job.kind;
    this.titleNode.textContent = job.name || `${job.kind} ${job.model ?? ''}`.trim();
    this.titleNode.title = `job ${job.id}`;
    const task = job.task ?? null;
    const profile = this.panel.tasks?.tasks.find(t => t.name === task);
    this.taskNode.hidden = !task;
    this.taskNode.textContent = task ?? '';
    this.taskNode.title = profile ? profile.title : (task ?? '');
    this.node.dataset.task = task ?? '';
    this.statusNode.textContent = job.status;
    this.statusNode.className = `jp-yolo-JobRow-status jp-yolo-mod-${job.status}`;

    const hasResults = RESULT_KINDS.includes(job.kind);
    this.check.hidden = !hasResults;
    this.resultsButton.hidden = !VIEW_KINDS.includes(job.kind);
    const started = job.started ?? null;
    const duration = started ? formatDuration((job.ended ?? Date.now() / 1000) - started) : '';
    this.timeNode.textContent = started
      ? `started ${startText(started)} · ${this.live ? 'running for ' : 'took '}${duration}`
      : `created ${startText(job.created)}`;
    this.timeNode.title = new Date((started ?? job.created) * 1000).toLocaleString();

    const meta = [job.id, job.data ? `data ${job.data}` : '', job.model ?? ''];
    this.metaNode.textContent = meta.filter(Boolean).join(' · ');
    const placed = job as IJob & IJobPlacement;
    const where = placementText(placed);
    this.placementNode.textContent = where ? ` · ${where}` : '';
    this.placementNode.title = placed.ray?.submission_id
      ? `Ray submission ${placed.ray.submission_id}${placed.ray.status ? ` (${placed.ray.status})` : ''}`
      : '';
    this.metaNode.append(this.placementNode);
    const reason = job.status === 'queued' ? queueReason(placed) : null;
    this.queueReasonNode.textContent = reason ? `waiting: ${reason}` : '';
    this.queueReasonNode.hidden = !reason;

    const fraction = p.fraction ?? (job.status === 'succeeded' ? 1 : null);
    this.bar.hidden = fraction === null;
    this.barFill.style.width = `${Math.round((fraction ?? 0) * 1000) / 10}%`;
    this.progressNode.dataset.fraction = fraction === null ? '' : String(fraction);
    this.progressNode.textContent = progressText(job, this.panel.tasks);

    const loss = totalLoss(p.loss);
    this.lossNode.textContent = loss === null ? '' : `loss ${formatLoss(loss)}`;
    this.chart.hidden = loss === null && this.series.length < 2;
    this.errorNode.textContent = job.error ?? '';
    this.errorNode.hidden = !job.error;

    const stoppable = job.status === 'queued' || job.status === 'running';
    this.stopButton.hidden = !(stoppable || job.status === 'stopping');
    this.stopButton.disabled = this.busy || !stoppable;
    this.resumeButton.hidden = !job.resumable;
    this.resumeButton.disabled = this.busy;
    const owner = this.panel.readOnly;
    lock(this.stopButton, owner, STOP_TITLE, 'Stop the job there');
    lock(this.resumeButton, owner, RESUME_TITLE, 'Resume the job there');
  }

  /** Read the events after the cursor (one page) into the loss series. */
  async loadEvents(): Promise<void> {
    try {
      const page = await getEvents(this.job.id, this.cursor, 2000);
      for (const event of page.events) {
        if (event.type === 'batch') {
          const loss = totalLoss(event.loss);
          if (loss !== null) {
            this.series.push(loss);
          }
        }
        this.cursor = Math.max(this.cursor, event.seq);
      }
      if (!page.events.length) {
        this.cursor = Math.max(this.cursor, page.last_seq);
      }
      this.sparkline.draw(this.series.points, `training loss of job ${this.job.id}`);
      this.update(this.job);
    } catch (error) {
      // the next tick tries again; the row still shows the job's progress
      console.warn(`jupyter-yolo: events of job ${this.job.id}: ${messageOf(error)}`);
    }
  }

  private async act(action: () => Promise<void>): Promise<void> {
    if (this.panel.readOnly !== null) {
      return; // a locked button: its tooltip says why
    }
    this.busy = true;
    this.update(this.job);
    try {
      await action();
    } finally {
      this.busy = false;
      this.update(this.job);
    }
  }
}

const STOP_TITLE = 'Stop gracefully: the batch finishes and last.pt is saved';
const RESUME_TITLE = 'Continue the training from last.pt';

/**
 * Lock a button while another server supervises the jobs (or unlock it). `aria-disabled` rather
 * than `disabled`, so the tooltip that says why still shows and the button stays focusable.
 */
function lock(node: HTMLButtonElement, owner: string | null, title: string, where: string): void {
  if (owner === null) {
    node.removeAttribute('aria-disabled');
    node.title = title;
  } else {
    node.setAttribute('aria-disabled', 'true');
    node.title = `Read-only: ${owner}. ${where}.`;
  }
}

function button(label: string, className: string, title: string): HTMLButtonElement {
  const node = el('button', `jp-yolo-Button ${className}`, label);
  node.type = 'button';
  node.title = title;
  return node;
}

/**
 * The headline metric of a job, e.g. "mask mAP50-95 0.412": the key from its progress summary
 * (or its task's profile), labelled by the task table; the best value seen (else the latest).
 * Null when the job has no value yet or the server gives no headline.
 */
export function headlineText(job: IJob, tasks: ITaskTable | null): string | null {
  const p = job.progress;
  const profile = tasks?.tasks.find(t => t.name === job.task);
  const key = p.headline?.key ?? profile?.headline_metric;
  if (!key) {
    return null;
  }
  const value = p.headline?.best ?? p.headline?.value ?? p.task_metrics?.[key] ?? null;
  if (value === null || value === undefined) {
    return null;
  }
  const label = tasks?.metric_labels?.[key] ?? key.replace(/^metrics\//, '');
  return `${label} ${value.toFixed(3)}`;
}

/** "epoch 2/3 · batch 5/16 · ETA 40s · mask mAP50-95 0.412", "queued (2nd)", or the outcome. */
export function progressText(job: IJob, tasks: ITaskTable | null = null): string {
  const p = job.progress;
  if (job.status === 'queued') {
    return job.queue_position ? `waiting in the queue, position ${job.queue_position}` : 'queued';
  }
  const parts: string[] = [];
  if (p.epochs) {
    parts.push(`epoch ${p.epoch ?? 0}/${p.epochs}`);
    if (p.batches && isLive(job.status, tasks)) {
      parts.push(`batch ${p.batch ?? 0}/${p.batches}`);
    }
  }
  if (job.status === 'running' && p.eta_s) {
    parts.push(`ETA ${formatDuration(p.eta_s)}`);
  }
  const headline = headlineText(job, tasks);
  const map = p.metrics['mAP50-95'];
  if (headline !== null) {
    parts.push(headline);
  } else if (map !== undefined) {
    parts.push(`mAP50-95 ${map.toFixed(3)}`);
  }
  return parts.join(' · ');
}
