/**
 * The status bar item: the device in use ("CPU 2 cores", "NVIDIA H100 80 GB") with its live
 * utilisation, and a warning mark when the accelerator report has warnings. Clicking it opens
 * the full report.
 *
 * Usage is polled every 1.5 s at most, and not at all while the page is hidden.
 */
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { IAcceleratorReport, IUsage, getAccelerators, getUsage } from './api';
import {
  IClusterFields,
  IClusterUsage,
  clusterLabel,
  clusterTooltip,
  rememberCluster
} from './cluster';
import { el, formatBytes, formatPercent } from './format';
import { messageOf, notifyError } from './notify';

const USAGE_INTERVAL_MS = 1500;

export class AcceleratorStatus extends Widget {
  private readonly labelNode = el('span', 'jp-yolo-StatusItem-label', 'YOLO …');
  private readonly usageNode = el('span', 'jp-yolo-StatusItem-usage');
  private readonly warningNode = el('span', 'jp-yolo-StatusItem-warning');
  /** The Ray cluster of the `ray` executor, hidden when the server has none. */
  private readonly clusterNode = el('span', 'jp-yolo-StatusItem-cluster');
  private report: IAcceleratorReport | null = null;
  private readonly poll: Poll;

  constructor(private readonly openReport: () => void) {
    super();
    this.id = 'jp-yolo-status';
    this.addClass('jp-yolo-StatusItem');
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this.node.title = 'Probing the accelerators…';
    this.warningNode.hidden = true;
    this.clusterNode.hidden = true;
    this.node.append(this.warningNode, this.labelNode, this.usageNode, this.clusterNode);
    this.node.addEventListener('click', () => this.openReport());
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this.openReport();
      }
    });
    this.poll = new Poll({
      name: 'jupyter-yolo:usage',
      auto: false,
      factory: () => this.tick(),
      frequency: { interval: USAGE_INTERVAL_MS, backoff: true, max: 60_000 },
      standby: 'when-hidden'
    });
  }

  /** Start polling the usage and read the report (the first one probes the hardware). */
  async start(): Promise<void> {
    void this.poll.start();
    try {
      await this.loadReport(false);
    } catch (error) {
      notifyError('The accelerator report failed', error);
    }
  }

  /** The last report read, if any. */
  get currentReport(): IAcceleratorReport | null {
    return this.report;
  }

  /** Read the report (`refresh` probes the hardware again) and show it; throws on failure. */
  async loadReport(refresh: boolean): Promise<IAcceleratorReport> {
    try {
      const report = await getAccelerators(refresh);
      this.showReport(report);
      return report;
    } catch (error) {
      if (this.report === null) {
        this.labelNode.textContent = 'YOLO: no report';
        this.node.dataset.state = 'error';
      }
      this.node.title = `The accelerator report failed: ${messageOf(error)}`;
      throw error;
    }
  }

  override dispose(): void {
    this.poll.dispose();
    super.dispose();
  }

  private showReport(report: IAcceleratorReport): void {
    this.report = report;
    this.labelNode.textContent = report.primary.label;
    this.node.dataset.device = report.primary.kind;
    this.node.dataset.state = 'ok';
    const warnings = report.warnings ?? [];
    this.warningNode.hidden = warnings.length === 0;
    this.warningNode.textContent = warnings.length ? '⚠' : '';
    this.warningNode.title = warnings.map(w => w.message).join('\n\n');
    this.node.classList.toggle('jp-yolo-mod-warning', warnings.length > 0);
    this.node.title = this.tooltip(null);
    rememberCluster((report as IAcceleratorReport & IClusterFields).cluster);
  }

  private async tick(): Promise<void> {
    const usage = await getUsage();
    this.usageNode.textContent = usageText(usage);
    this.node.title = this.tooltip(usage);
    this.showCluster((usage as IUsage & { cluster?: IClusterUsage | null }).cluster ?? null);
  }

  /** The cluster's free CPUs and GPUs, or its error in a warning style. */
  private showCluster(usage: IClusterUsage | null): void {
    this.clusterNode.hidden = usage === null;
    if (usage === null) {
      return;
    }
    this.clusterNode.textContent = clusterLabel(usage);
    this.clusterNode.classList.toggle('jp-yolo-mod-warning', usage.error !== null);
    this.clusterNode.title = clusterTooltip(usage);
  }

  private tooltip(usage: IUsage | null): string {
    const lines: string[] = [];
    if (this.report) {
      const r = this.report.recommendation;
      lines.push(
        `${this.report.primary.label}: recommended device=${r.device}, ${r.model}, batch ${r.batch}, workers ${r.workers}`
      );
      for (const warning of this.report.warnings ?? []) {
        lines.push(`⚠ ${warning.message}`);
      }
    }
    if (usage) {
      lines.push(
        `CPU ${formatPercent(usage.cpu.percent)}, memory ${formatBytes(usage.memory.used_bytes)} of ${formatBytes(usage.memory.limit_bytes)}`
      );
      for (const gpu of usage.gpus) {
        lines.push(
          `GPU ${gpu.index} ${gpu.name ?? ''}: ${formatPercent(gpu.utilization_percent)}, ${formatBytes(gpu.memory_used_bytes)} of ${formatBytes(gpu.memory_total_bytes)}`
        );
      }
    }
    lines.push('Click for the full accelerator report.');
    return lines.join('\n');
  }
}

/** The live part of the item: GPU utilisation and memory where there is a GPU, else CPU. */
export function usageText(usage: IUsage): string {
  const gpu = usage.gpus[0];
  if (gpu) {
    const memory =
      gpu.memory_total_bytes !== null
        ? ` · ${formatBytes(gpu.memory_used_bytes)}/${formatBytes(gpu.memory_total_bytes)}`
        : '';
    return `${formatPercent(gpu.utilization_percent)}${memory}`;
  }
  return `${formatPercent(usage.cpu.percent)} · RAM ${formatPercent(usage.memory.percent)}`;
}
