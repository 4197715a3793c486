/**
 * Main area views of one job: its log (following the tail while the tab is visible) and, when
 * the workspace is outside the server root so the file browser cannot show the job's folder,
 * the list of its result files with download links.
 */
import { Message } from '@lumino/messaging';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { IJob, artifactUrl, getLog, listArtifacts } from './api';
import { el, formatBytes } from './format';
import { messageOf } from './notify';

const LOG_INTERVAL_MS = 2000;

export class LogView extends Widget {
  private readonly pre = el('pre', 'jp-yolo-Log-text');
  private readonly poll: Poll;
  /** Whether the view keeps to the end of the log (until the reader scrolls up). */
  private follow = true;

  constructor(readonly jobId: string) {
    super();
    this.addClass('jp-yolo-Log');
    this.node.append(this.pre);
    this.node.addEventListener('scroll', () => {
      const node = this.node;
      this.follow = node.scrollTop + node.clientHeight >= node.scrollHeight - 20;
    });
    this.poll = new Poll({
      name: `jupyter-yolo:log:${jobId}`,
      factory: () => this.load(),
      frequency: { interval: LOG_INTERVAL_MS, backoff: true, max: 30_000 },
      standby: () => document.visibilityState === 'hidden' || !this.isVisible
    });
  }

  override dispose(): void {
    this.poll.dispose();
    super.dispose();
  }

  /** Read the log's tail; stay at its end unless the reader scrolled up. */
  async load(): Promise<void> {
    try {
      const text = (await getLog(this.jobId)) || '(the log is empty)';
      if (text !== this.pre.textContent) {
        this.pre.textContent = text;
        this.scrollToEnd();
      }
    } catch (error) {
      this.pre.textContent = `The log cannot be read: ${messageOf(error)}`;
      throw error;
    }
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.scrollToEnd();
  }

  private scrollToEnd(): void {
    if (this.follow) {
      this.node.scrollTop = this.node.scrollHeight;
    }
  }
}

export class ArtifactsView extends Widget {
  constructor(readonly job: IJob) {
    super();
    this.addClass('jp-yolo-Artifacts');
  }

  async load(): Promise<void> {
    const intro = el(
      'p',
      'jp-yolo-Artifacts-intro',
      `The workspace is outside the Jupyter server's root, so the file browser cannot show ` +
        `${this.job.folder}. These are the job's result files:`
    );
    let items: HTMLElement;
    try {
      const artifacts = await listArtifacts(this.job.id);
      if (artifacts.length === 0) {
        items = el('p', '', 'No result files yet.');
      } else {
        items = el('ul', 'jp-yolo-Artifacts-list');
        for (const artifact of artifacts) {
          const li = el('li');
          const link = el('a', '', artifact.path);
          link.href = artifactUrl(this.job.id, artifact.path);
          link.target = '_blank';
          link.rel = 'noopener';
          li.append(link, el('span', 'jp-yolo-Artifacts-size', formatBytes(artifact.size)));
          items.append(li);
        }
      }
    } catch (error) {
      items = el(
        'p',
        'jp-yolo-Report-error',
        `The result files cannot be listed: ${messageOf(error)}`
      );
    }
    this.node.replaceChildren(intro, items);
  }
}
