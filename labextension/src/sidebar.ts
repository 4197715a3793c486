/**
 * The "YOLO jobs" sidebar: every job with its task, status, progress, headline metric and a loss
 * sparkline, and the actions Stop, Resume, Log and Folder. Task titles and metric labels come
 * from the task table (`GET /yolo/tasks`, read once), values from each job's progress summary.
 *
 * All state comes from the server (`GET /yolo/jobs` and each job's events), so the panel is the
 * same after a page reload. It polls every 1.5 s while a job is queued or running and every 6 s
 * otherwise, and not at all while the page or the panel is hidden. Rows are updated in place so
 * a button does not move away under the pointer.
 *
 * When another Jupyter server supervises the workspace's jobs, a banner says so (with that
 * server's pid, as the server words it) and Stop and Resume are locked, saying why; what was
 * skipped at start-up (damaged job folders, registry rows) is listed in a notice that folds to
 * one line.
 */
import { Poll } from '@lumino/polling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  IJob,
  IJobList,
  ITaskTable,
  IWarning,
  isLive,
  getEvents,
  listJobs,
  resumeJob,
  stopJob,
  tasksOnce
} from './api';
import { el, formatDuration, formatLoss, totalLoss } from './format';
import { messageOf, notifyError } from './notify';
import { Series, Sparkline } from './sparkline';

const LIVE_INTERVAL_MS = 1500;
const IDLE_INTERVAL_MS = 6000;
/** Jobs whose events are fetched in one tick (live jobs first). */
const EVENT_FETCHES_PER_TICK = 3;

/** What the panel asks the application to do for a job. */
export interface IJobActions {
  openLog(job: IJob): void;
  openFolder(job: IJob): Promise<void>;
}

export class JobsPanel extends Widget {
  private readonly list = el('ul', 'jp-yolo-JobList');
  private readonly empty = el(
    'p',
    'jp-yolo-JobsPanel-empty',
    'No jobs yet. Start a training from the YOLO quickstart notebook or with POST /yolo/jobs.'
  );
  private readonly problem = el('p', 'jp-yolo-JobsPanel-problem');
  private readonly banner = el('div', 'jp-yolo-JobsPanel-readOnly');
  private readonly bannerText = el('span');
  private readonly notice = new SkippedNotice();
  private readonly rows = new Map<string, JobRow>();
  private readonly poll: Poll;
  private loaded = false;
  private owner: string | null = null;
  /** The task table (null until read, or when the server does not serve one). */
  tasks: ITaskTable | null = null;

  constructor(private readonly actions: IJobActions) {
    super();
    this.id = 'jupyter-yolo-jobs';
    this.addClass('jp-yolo-JobsPanel');
    this.title.caption = 'YOLO jobs';
    const header = el('header', 'jp-yolo-JobsPanel-header');
    header.append(el('h2', '', 'YOLO jobs'));
    const refresh = el('button', 'jp-yolo-Button jp-yolo-JobsPanel-refresh', 'Refresh');
    refresh.title = 'Read the jobs from the server now';
    refresh.addEventListener('click', () => void this.refresh());
    header.append(refresh);
    this.problem.hidden = true;
    this.empty.hidden = true;
    this.banner.hidden = true;
    this.banner.setAttribute('role', 'status');
    this.banner.append(el('strong', '', 'Read-only: '), this.bannerText);
    this.node.append(header, this.banner, this.notice.node, this.problem, this.empty, this.list);
    this.poll = new Poll({
      name: 'jupyter-yolo:jobs',
      factory: () => this.tick(),
      frequency: { interval: IDLE_INTERVAL_MS, backoff: true, max: 60_000 },
      standby: () => document.visibilityState === 'hidden' || !this.isVisible
    });
  }

  /** Why this server may not stop or resume jobs (another one supervises them), or null. */
  get readOnly(): string | null {
    return this.owner;
  }

  /** Read the jobs now. */
  refresh(): Promise<void> {
    return this.poll.refresh();
  }

  override dispose(): void {
    this.poll.dispose();
    super.dispose();
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
  }

  private async tick(): Promise<void> {
    let list: IJobList;
    try {
      list = await listJobs();
    } catch (error) {
      this.problem.textContent = `The job list cannot be read: ${messageOf(error)}`;
      this.problem.hidden = false;
      throw error; // the poll backs off
    }
    this.problem.hidden = true;
    this.tasks = this.tasks ?? (await tasksOnce());
    const jobs = list.jobs;
    this.showSupervision(list.supervising, list.warnings);
    this.render(jobs);
    const live = jobs.some(job => isLive(job.status, this.tasks));
    const interval = live ? LIVE_INTERVAL_MS : IDLE_INTERVAL_MS;
    if (this.poll.frequency.interval !== interval) {
      this.poll.frequency = { ...this.poll.frequency, interval };
    }
    await this.loadEvents(jobs);
  }

  private render(jobs: IJob[]): void {
    this.loaded = true;
    const seen = new Set<string>();
    jobs.forEach((job, index) => {
      seen.add(job.id);
      let row = this.rows.get(job.id);
      if (!row) {
        row = new JobRow(job, this);
        this.rows.set(job.id, row);
      }
      row.update(job);
      const at = this.list.children.item(index);
      if (at !== row.node) {
        this.list.insertBefore(row.node, at);
      }
    });
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.node.remove();
        this.rows.delete(id);
      }
    }
    this.empty.hidden = !this.loaded || jobs.length > 0;
  }

  /** The read-only banner (the `not_supervising` warning) and the other start-up warnings. */
  private showSupervision(supervising: boolean, warnings: IWarning[]): void {
    const lock = warnings.find(w => w.code === 'not_supervising');
    this.owner = supervising
      ? null
      : (lock?.message ?? "another Jupyter server supervises this workspace's jobs");
    this.banner.hidden = this.owner === null;
    this.bannerText.textContent = `${this.owner ?? ''}. Stop and resume its jobs there.`;
    this.notice.update(warnings.filter(w => w !== lock));
  }

  /** Fetch new events of a few jobs (live ones first) to extend their loss series. */
  private async loadEvents(jobs: IJob[]): Promise<void> {
    const behind = jobs
      .map(job => this.rows.get(job.id))
      .filter((row): row is JobRow => row !== undefined && row.behind)
      .sort((a, b) => Number(b.live) - Number(a.live))
      .slice(0, EVENT_FETCHES_PER_TICK);
    await Promise.all(behind.map(row => row.loadEvents()));
  }

  /** Stop a job from its row; the server's answer updates the row at once. */
  async stop(row: JobRow): Promise<void> {
    try {
      row.update(await stopJob(row.id));
    } catch (error) {
      notifyError(`Stopping job ${row.id} failed`, error);
    }
    void this.refresh();
  }

  async resume(row: JobRow): Promise<void> {
    try {
      row.update(await resumeJob(row.id));
    } catch (error) {
      notifyError(`Resuming job ${row.id} failed`, error);
    }
    void this.refresh();
  }

  openLog(job: IJob): void {
    this.actions.openLog(job);
  }

  async openFolder(job: IJob): Promise<void> {
    try {
      await this.actions.openFolder(job);
    } catch (error) {
      notifyError(`Opening the folder of job ${job.id} failed`, error);
    }
  }
}

/** One job in the list. */
class JobRow {
  readonly node = el('li', 'jp-yolo-JobRow');
  private readonly titleNode = el('span', 'jp-yolo-JobRow-title');
  private readonly taskNode = el('span', 'jp-yolo-JobRow-task');
  private readonly statusNode = el('span', 'jp-yolo-JobRow-status');
  private readonly metaNode = el('div', 'jp-yolo-JobRow-meta');
  private readonly bar = el('div', 'jp-yolo-JobRow-bar');
  private readonly barFill = el('div', 'jp-yolo-JobRow-barFill');
  private readonly progressNode = el('div', 'jp-yolo-JobRow-progress');
  private readonly lossNode = el('span', 'jp-yolo-JobRow-loss');
  private readonly chart = el('div', 'jp-yolo-JobRow-chart');
  private readonly errorNode = el('div', 'jp-yolo-JobRow-error');
  private readonly stopButton = button('Stop', 'jp-yolo-JobRow-stop', STOP_TITLE);
  private readonly resumeButton = button('Resume', 'jp-yolo-JobRow-resume', RESUME_TITLE);
  private readonly logButton = button('Log', 'jp-yolo-JobRow-log', "Open the job's log");
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
    private readonly panel: JobsPanel
  ) {
    this.job = job;
    this.node.dataset.jobId = job.id;
    const head = el('div', 'jp-yolo-JobRow-head');
    head.append(this.titleNode, this.taskNode, this.statusNode);
    this.bar.append(this.barFill);
    this.chart.append(this.sparkline.node, this.lossNode);
    const actions = el('div', 'jp-yolo-JobRow-actions');
    actions.append(this.stopButton, this.resumeButton, this.logButton, this.folderButton);
    this.node.append(
      head,
      this.metaNode,
      this.bar,
      this.progressNode,
      this.chart,
      this.errorNode,
      actions
    );

    this.stopButton.addEventListener('click', () => void this.act(() => this.panel.stop(this)));
    this.resumeButton.addEventListener('click', () => void this.act(() => this.panel.resume(this)));
    this.logButton.addEventListener('click', () => this.panel.openLog(this.job));
    this.folderButton.addEventListener('click', () => void this.panel.openFolder(this.job));
  }

  get id(): string {
    return this.job.id;
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

    const meta = [job.id, job.data ? `data ${job.data}` : '', job.model ?? ''];
    this.metaNode.textContent = meta.filter(Boolean).join(' · ');

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

/** The start-up warnings as a notice folded to one line ("2 items were skipped at start-up"). */
class SkippedNotice {
  readonly node = el('details', 'jp-yolo-JobsPanel-skipped');
  private readonly summary = el('summary', 'jp-yolo-JobsPanel-skippedSummary');
  private readonly list = el('ul', 'jp-yolo-JobsPanel-skippedList');
  private shown = '';

  constructor() {
    this.node.hidden = true;
    this.node.append(this.summary, this.list);
  }

  /** Show these warnings; the list is rebuilt only when they change, so it stays open. */
  update(warnings: IWarning[]): void {
    const key = JSON.stringify(warnings);
    if (key === this.shown) {
      return;
    }
    this.shown = key;
    const n = warnings.length;
    this.node.hidden = n === 0;
    this.summary.textContent = `${n} ${n === 1 ? 'item was' : 'items were'} skipped at start-up`;
    this.list.replaceChildren(
      ...warnings.map(warning => {
        const item = el('li', '', warning.message);
        item.dataset.code = warning.code;
        return item;
      })
    );
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
