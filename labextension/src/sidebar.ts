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
  listJobs,
  resumeJob,
  stopJob,
  tasksOnce
} from './api';
import { el } from './format';
import { IRowHost, JobRow } from './jobrow';
import { messageOf, notifyError } from './notify';

const LIVE_INTERVAL_MS = 1500;
const IDLE_INTERVAL_MS = 6000;
/** Jobs whose events are fetched in one tick (live jobs first). */
const EVENT_FETCHES_PER_TICK = 3;

/** What the panel asks the application to do for a job. */
export interface IJobActions {
  openLog(job: IJob): void;
  openFolder(job: IJob): Promise<void>;
  openResults(job: IJob): void;
  /** Compare these runs (in the list's order). */
  openCompare(jobs: IJob[]): void;
}

export class JobsPanel extends Widget implements IRowHost {
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
  private readonly compareButton = el('button', 'jp-yolo-Button jp-yolo-JobsPanel-compare');
  /** Jobs picked for comparison (kept across renders; dropped when a job goes away). */
  private readonly picked = new Set<string>();
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
    this.compareButton.title = "Overlay the picked runs' curves and table their metrics";
    this.compareButton.addEventListener('click', () => this.compare());
    this.showPicked();
    const buttons = el('div', 'jp-yolo-JobsPanel-buttons');
    buttons.append(this.compareButton, refresh);
    header.append(buttons);
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
        this.picked.delete(id);
      }
    }
    this.showPicked();
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

  /** A row's comparison checkbox changed. */
  select(row: JobRow, selected: boolean): void {
    if (selected) {
      this.picked.add(row.id);
    } else {
      this.picked.delete(row.id);
    }
    this.showPicked();
  }

  private showPicked(): void {
    const n = this.picked.size;
    this.compareButton.textContent = `Compare (${n})`;
    this.compareButton.disabled = n < 2;
    this.compareButton.dataset.count = String(n);
  }

  private compare(): void {
    const jobs = Array.from(this.rows.values())
      .filter(row => this.picked.has(row.id))
      .map(row => row.current);
    if (jobs.length >= 2) {
      this.actions.openCompare(jobs);
    }
  }

  openResults(job: IJob): void {
    this.actions.openResults(job);
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
