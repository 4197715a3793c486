/**
 * The jupyter-yolo REST API (under the server's base URL), typed.
 *
 * Requests go through `ServerConnection.makeRequest`, which adds the token or the XSRF header of
 * the logged-in page. A failed request throws a `YoloApiError` carrying the server's own
 * `message`, so the caller can show a person what to do about it.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** An error answered by the server (or the network), with a message a person can act on. */
export class YoloApiError extends Error {
  constructor(
    message: string,
    readonly status: number | null
  ) {
    super(message);
    this.name = 'YoloApiError';
  }
}

export interface IWarning {
  code: string;
  message: string;
}

export interface IPrimaryDevice {
  kind: string;
  label: string;
  count: number;
  memory_bytes: number | null;
}

/** One training speed choice (`contract/training_speed.py` SpeedChoice). */
export interface ISpeedChoice {
  name: string;
  value: number | string | boolean;
  source: string;
  reason: string;
}

export interface IRecommendation {
  device: string;
  model: string;
  batch: number;
  workers: number;
  amp?: boolean;
  reason?: string;
  /** The speed choices a training job makes here (servers before issue 17 leave it out). */
  speed?: { choices: ISpeedChoice[]; facts: string };
}

/** `GET /yolo/accelerators`. */
export interface IAcceleratorReport {
  primary: IPrimaryDevice;
  recommendation: IRecommendation;
  warnings: IWarning[];
  host: Record<string, unknown>;
  devices: Record<string, unknown>;
  torch?: Record<string, unknown> | null;
  unusable_device_nodes?: unknown[];
  generated_at?: number | string;
}

export interface IGpuUsage {
  index: number;
  name: string | null;
  utilization_percent: number | null;
  memory_used_bytes: number | null;
  memory_total_bytes: number | null;
}

/** `GET /yolo/accelerators/usage`. */
export interface IUsage {
  cpu: { percent: number | null; cpus?: number };
  memory: { used_bytes: number | null; limit_bytes: number | null; percent: number | null };
  gpus: IGpuUsage[];
}

/** A job status: one of the task table's `statuses.all` (a newer server may add some). */
export type JobStatus = string;

/** The job statuses by meaning, as `GET /yolo/tasks` serves them (`statuses`). */
export interface IStatusSets {
  /** Every status, in lifecycle order. */
  all: JobStatus[];
  /** A job in one of these will not change again. */
  terminal: JobStatus[];
  /** A runner process exists (or is believed to) for the job. */
  active: JobStatus[];
  /** Not terminal: a job in one of these may still change by itself. */
  unfinished: JobStatus[];
}

/**
 * The statuses of a server whose task table does not say (an older one, or none read yet):
 * what such servers use.
 */
export const FALLBACK_STATUSES: Readonly<IStatusSets> = {
  all: ['queued', 'running', 'stopping', 'succeeded', 'failed', 'stopped', 'interrupted'],
  terminal: ['succeeded', 'failed', 'stopped', 'interrupted'],
  active: ['running', 'stopping'],
  unfinished: ['queued', 'running', 'stopping']
};

/** The server's status sets when its task table has them, else the fallback. */
export function statusSets(tasks: ITaskTable | null): IStatusSets {
  const served = tasks?.statuses;
  const valid =
    served &&
    (['all', 'terminal', 'active', 'unfinished'] as const).every(key => Array.isArray(served[key]));
  return valid ? served : FALLBACK_STATUSES;
}

/** Whether a job in `status` may still change by itself (it is unfinished). */
export function isLive(status: JobStatus, tasks: ITaskTable | null): boolean {
  return statusSets(tasks).unfinished.includes(status);
}

export interface IProgress {
  epoch: number | null;
  epochs: number | null;
  epochs_done: number;
  batch: number | null;
  batches: number | null;
  fraction: number | null;
  images_per_s: number | null;
  eta_s: number | null;
  loss: Record<string, number>;
  metrics: Record<string, number>;
  /** Every metric of the job's task under ultralytics' keys (newer servers). */
  task_metrics?: Record<string, number | null>;
  /** The task's headline metric: its key, latest and best value (newer servers). */
  headline?: IHeadline | null;
  warnings: number;
  last_seq: number;
}

/** A job's headline metric in its progress summary. */
export interface IHeadline {
  key: string;
  value: number | null;
  best: number | null;
  best_epoch?: number | null;
}

/** One task of `GET /yolo/tasks` (the fields the extension reads). */
export interface ITaskProfile {
  name: string;
  title: string;
  model_suffix: string;
  metric_keys: string[];
  loss_keys: string[];
  headline_metric: string;
  geometry?: string;
}

/** `GET /yolo/tasks`: the task profile table. */
export interface ITaskTable {
  tasks: ITaskProfile[];
  architectures: { name: string; task: string; family: string; scale: string | null }[];
  default: string;
  ultralytics: string | null;
  /** Short labels of metric keys (`metrics/mAP50-95(M)` → `mask mAP50-95`). */
  metric_labels?: Record<string, string>;
  /** The job statuses by meaning (newer servers; see `statusSets` for the fallback). */
  statuses?: IStatusSets;
}

/** One job as `GET /yolo/jobs` describes it. */
export interface IJob {
  id: string;
  kind: string;
  name: string | null;
  status: JobStatus;
  /** The YOLO task (detect, segment, classify, pose, obb, semantic, depth); newer servers. */
  task?: string | null;
  model: string | null;
  data: string | null;
  created: number;
  started: number | null;
  ended: number | null;
  queue_position: number | null;
  progress: IProgress;
  error: string | null;
  exit_reason?: string | null;
  resumable: boolean;
  /** The job's folder, relative to the workspace. */
  folder: string;
}

export interface IJobList {
  jobs: IJob[];
  queue: string[];
  max_jobs_per_device: number;
  /**
   * False when another Jupyter server holds this workspace's lock: this one shows the jobs but
   * answers 409 to creating, stopping and resuming them.
   */
  supervising: boolean;
  /**
   * What was skipped or refused at start-up: a damaged job folder (code `job_folder`), registry
   * row (`registry`) or workspace entry (`workspace`), and, when not supervising, the other
   * server's lock (`not_supervising`, its message naming that server's pid).
   */
  warnings: IWarning[];
}

export interface IJobEvent {
  seq: number;
  time: number;
  type: string;
  epoch?: number;
  batch?: number;
  loss?: Record<string, number>;
}

export interface IEventPage {
  events: IJobEvent[];
  last_seq: number;
  status: JobStatus;
  more: boolean;
}

export interface IArtifact {
  path: string;
  size: number;
  modified: number;
  type: string;
}

export interface IWorkspaceLocation {
  /** The workspace relative to the server root: `''` is the root, null is outside it. */
  server_path: string | null;
}

export interface INotebookCopy {
  name: string;
  path: string;
}

let settings: ServerConnection.ISettings | null = null;

function serverSettings(): ServerConnection.ISettings {
  if (settings === null) {
    settings = ServerConnection.makeSettings();
  }
  return settings;
}

/** The absolute URL of an API path such as `yolo/jobs`. */
export function apiUrl(...parts: string[]): string {
  return URLExt.join(serverSettings().baseUrl, ...parts);
}

async function send(path: string[], init: RequestInit = {}, query = ''): Promise<Response> {
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(apiUrl(...path) + query, init, serverSettings());
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new YoloApiError(`The Jupyter server cannot be reached: ${reason}`, null);
  }
  if (!response.ok) {
    throw new YoloApiError(await errorMessage(response), response.status);
  }
  return response;
}

/** The server's JSON `message`, else its text, else the HTTP status. */
async function errorMessage(response: Response): Promise<string> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { message?: unknown };
    if (typeof body.message === 'string' && body.message) {
      return body.message;
    }
  } catch {
    // not JSON: fall through to the text
  }
  const status = `${response.status} ${response.statusText}`.trim();
  return text && text.length < 500 ? `${status}: ${text}` : status;
}

async function getJSON<T>(path: string[], query = ''): Promise<T> {
  const response = await send(path, { method: 'GET' }, query);
  return (await response.json()) as T;
}

async function postJSON<T>(path: string[], body: unknown = {}): Promise<T> {
  const response = await send(path, { method: 'POST', body: JSON.stringify(body) });
  return (await response.json()) as T;
}

export function getAccelerators(refresh = false): Promise<IAcceleratorReport> {
  return getJSON<IAcceleratorReport>(['yolo', 'accelerators'], refresh ? '?refresh=1' : '');
}

export function getUsage(): Promise<IUsage> {
  return getJSON<IUsage>(['yolo', 'accelerators', 'usage']);
}

export function getTasks(): Promise<ITaskTable> {
  return getJSON<ITaskTable>(['yolo', 'tasks']);
}

/** How long a failed read of the task table stands before the next use asks again. */
export const TASKS_RETRY_MS = 60_000;

let taskTable: ITaskTable | null = null;
let taskTableFailedAt: number | null = null;
let taskTableRead: Promise<ITaskTable | null> | null = null;

/**
 * The task table, kept once read (null when it cannot be read, e.g. from an older server or
 * during a transient failure: the sidebar then labels metrics by their keys). A failure is not
 * kept for good: a use a minute or more after it asks the server again.
 */
export function tasksOnce(): Promise<ITaskTable | null> {
  if (taskTable !== null) {
    return Promise.resolve(taskTable);
  }
  if (taskTableRead !== null) {
    return taskTableRead;
  }
  if (taskTableFailedAt !== null && Date.now() - taskTableFailedAt < TASKS_RETRY_MS) {
    return Promise.resolve(null);
  }
  taskTableRead = getTasks()
    .then(
      table => {
        taskTable = table;
        taskTableFailedAt = null;
        return table;
      },
      error => {
        console.warn(`jupyter-yolo: the task table cannot be read: ${String(error)}`);
        taskTableFailedAt = Date.now();
        return null;
      }
    )
    .finally(() => {
      taskTableRead = null;
    });
  return taskTableRead;
}

export function listJobs(): Promise<IJobList> {
  return getJSON<IJobList>(['yolo', 'jobs']);
}

export function stopJob(id: string): Promise<IJob> {
  return postJSON<IJob>(['yolo', 'jobs', id, 'stop']);
}

export function resumeJob(id: string): Promise<IJob> {
  return postJSON<IJob>(['yolo', 'jobs', id, 'resume']);
}

export function getEvents(id: string, after: number, limit = 1000): Promise<IEventPage> {
  return getJSON<IEventPage>(['yolo', 'jobs', id, 'events'], `?after=${after}&limit=${limit}`);
}

export async function getLog(id: string, bytes = 65536): Promise<string> {
  const response = await send(['yolo', 'jobs', id, 'log'], { method: 'GET' }, `?bytes=${bytes}`);
  return response.text();
}

export async function listArtifacts(id: string): Promise<IArtifact[]> {
  const body = await getJSON<{ artifacts: IArtifact[] }>(['yolo', 'jobs', id, 'artifacts']);
  return body.artifacts;
}

/** The URL of one result file (the page's session cookie authenticates a plain GET). */
export function artifactUrl(id: string, path: string): string {
  return apiUrl('yolo', 'jobs', id, 'artifacts', ...path.split('/').map(encodeURIComponent));
}

export function getWorkspaceLocation(): Promise<IWorkspaceLocation> {
  return getJSON<IWorkspaceLocation>(['yolo', 'workspace']);
}

export function copyNotebook(name: string): Promise<INotebookCopy> {
  return postJSON<INotebookCopy>(['yolo', 'notebooks', name]);
}

// ---- run results (`GET /yolo/jobs/{id}/results`, mirrors jupyter_yolo/contract/results.py)

/** A number the server may not know (null). */
export type MaybeNumber = number | null;

/** One accelerator in a usage sample. */
export interface IRunGpuUsage {
  index: number;
  name: string;
  util_percent: MaybeNumber;
  memory_used_bytes: MaybeNumber;
  memory_total_bytes: MaybeNumber;
}

/** One system usage sample of a running job (`usage` events). */
export interface IUsageSample {
  cpu_percent: MaybeNumber;
  memory_bytes: MaybeNumber;
  memory_limit_bytes: MaybeNumber;
  gpus: IRunGpuUsage[];
  /** When the sample was taken (epoch seconds). */
  time?: number;
}

/** One class's row of the final validation, under ultralytics' metric keys. */
export interface IClassMetrics {
  cls: number;
  name: string;
  images: MaybeNumber;
  instances: MaybeNumber;
  metrics: Record<string, MaybeNumber>;
}

/** A validator curve (`PR`, `F1`, `Precision`, `Recall`) of boxes (B), masks (M) or poses (P). */
export interface ICurve {
  name: string;
  kind: string;
  x_label: string;
  y_label: string;
  x: number[];
  per_class: Record<string, number[]>;
  mean: number[];
}

/** `matrix[predicted][true]`; detection tasks add `background` last. */
export interface IConfusionMatrix {
  names: string[];
  matrix: number[][];
}

/** A detection as the runner writes it (boxes in pixels of the original image). */
export interface IDetection {
  cls: number;
  name: string;
  conf: number | null;
  box_xyxy: (number | null)[];
  polygon?: number[][];
  keypoints?: number[][];
  corners?: number[][];
}

/** A validation image with its ground truth and the final model's predictions. */
export interface IValImage {
  image: string;
  width: number;
  height: number;
  truth: IDetection[];
  predicted: IDetection[];
  truth_class?: string;
  predicted_classes?: string[];
}

/** The final validation of a run (the runner's results file). */
export interface IValidatorResults {
  task: string;
  names: string[];
  weights: string | null;
  metrics: Record<string, MaybeNumber>;
  per_class: IClassMetrics[];
  curves: ICurve[];
  confusion: IConfusionMatrix | null;
  val_images: IValImage[];
  speed_ms: Record<string, MaybeNumber>;
}

/** One epoch's headline figures. */
export interface IEpochSummary {
  epoch: number;
  metrics: Record<string, MaybeNumber>;
  fitness: MaybeNumber;
  time: number;
  loss?: Record<string, MaybeNumber>;
  val_loss?: Record<string, MaybeNumber> | null;
}

/** `GET /yolo/jobs/{id}/results`: a job's results as far as they exist now. */
export interface IRunResults {
  job_id: string;
  kind: string;
  status: JobStatus;
  task: string;
  name: string | null;
  created: number | null;
  started: number | null;
  ended: number | null;
  params: Record<string, unknown>;
  headline: string;
  best: IEpochSummary | null;
  last: IEpochSummary | null;
  epochs: number;
  final: IValidatorResults | null;
  usage: IUsageSample[];
  /** Every completed epoch in order (newer servers). */
  history?: IEpochSummary[];
}

/** A training epoch as its `epoch` event says it (the fields the charts read). */
export interface IEpochEvent extends IJobEvent {
  epoch: number;
  epochs?: number;
  loss?: Record<string, number>;
  val_loss?: Record<string, MaybeNumber> | null;
  metrics?: Record<string, MaybeNumber>;
  headline?: string;
  fitness?: MaybeNumber;
}

export function getResults(id: string): Promise<IRunResults> {
  return getJSON<IRunResults>(['yolo', 'jobs', id, 'results']);
}

export function getJob(id: string): Promise<IJob> {
  return getJSON<IJob>(['yolo', 'jobs', id]);
}

/** Every event of a job of one type, page after page (bounded by `maxPages`). */
/**
 * A run's epochs: from its results' `history` (losses included; the server keeps it as the run
 * goes, so a long run is not read event by event at every refresh), else, from a server whose
 * history has no losses yet, from its events.
 */
export async function runEpochs(id: string, results: IRunResults): Promise<IEpochEvent[]> {
  const history = results.history;
  if (history && history.every(h => h.loss !== undefined)) {
    return history.map(h => ({
      seq: Math.round(h.time * 1000), // a key only: a redone epoch has a later time
      time: h.time,
      type: 'epoch',
      epoch: h.epoch,
      epochs: results.epochs,
      metrics: h.metrics,
      fitness: h.fitness,
      loss: h.loss as Record<string, number>,
      val_loss: h.val_loss ?? null
    }));
  }
  return (await allEvents(id, 'epoch')) as IEpochEvent[];
}

export async function allEvents(id: string, type: string, maxPages = 20): Promise<IJobEvent[]> {
  const found: IJobEvent[] = [];
  let after = 0;
  for (let page = 0; page < maxPages; page++) {
    const batch = await getEvents(id, after, 2000);
    found.push(...batch.events.filter(event => event.type === type));
    if (!batch.more || !batch.events.length) {
      break;
    }
    after = batch.events[batch.events.length - 1].seq;
  }
  return found;
}

/**
 * A workspace file (a validation image) as an object URL, read through the Jupyter server's
 * files route with the page's token or XSRF header. `serverPath` is the workspace's place in the
 * server root (`GET /yolo/workspace`); the caller revokes the URL when done with it.
 */
export async function workspaceFileUrl(serverPath: string, path: string): Promise<string> {
  const parts = [serverPath, path]
    .filter(Boolean)
    .join('/')
    .split('/')
    .filter(Boolean)
    .map(encodeURIComponent);
  const response = await send(['files', ...parts], { method: 'GET' });
  return URL.createObjectURL(await response.blob());
}
