/**
 * The full accelerator report in a main area tab, for people: what matters first (the device,
 * the recommended training settings, warnings, a summary of the box), then the details folded
 * (host, torch build, each backend's devices, runtimes) with human labels and units, fields that
 * do not apply hidden. A button probes the hardware again.
 */
import { Widget } from '@lumino/widgets';

import { IAcceleratorReport, IRecommendation } from './api';
import { IClusterFields, clusterSection } from './cluster';
import { el } from './format';
import { notifyError } from './notify';

export class ReportView extends Widget {
  private readonly body = el('div', 'jp-yolo-Report-body');
  private readonly refreshButton = el('button', 'jp-yolo-Button', 'Probe again');

  constructor(private readonly load: (refresh: boolean) => Promise<IAcceleratorReport>) {
    super();
    this.addClass('jp-yolo-Report');
    const toolbar = el('div', 'jp-yolo-Report-toolbar');
    this.refreshButton.title = 'Run the hardware probe again (it imports torch: a few seconds)';
    this.refreshButton.addEventListener('click', () => void this.refresh(true));
    toolbar.append(this.refreshButton);
    this.node.append(toolbar, this.body);
  }

  /** Load the report (probing again when `probe`) and render it. */
  async refresh(probe: boolean): Promise<void> {
    this.refreshButton.disabled = true;
    this.refreshButton.textContent = probe ? 'Probing…' : 'Loading…';
    try {
      this.render(await this.load(probe));
    } catch (error) {
      notifyError('Reading the accelerator report failed', error);
      if (!this.body.hasChildNodes()) {
        this.body.replaceChildren(
          el('p', 'jp-yolo-Report-error', 'The report is not available: see the notification.')
        );
      }
    } finally {
      this.refreshButton.disabled = false;
      this.refreshButton.textContent = 'Probe again';
    }
  }

  render(report: IAcceleratorReport): void {
    const parts: HTMLElement[] = [];
    parts.push(el('h2', 'jp-yolo-Report-device', report.primary.label));

    // imgsz: the image size of contract.training_defaults (servers before it leave it out)
    const rec: IRecommendation & { imgsz?: number } = report.recommendation;
    parts.push(el('h3', '', 'Recommended for training'));
    const recRows: [string, string][] = [
      ['Device', rec.device],
      ['Model', rec.model],
      ['Batch', String(rec.batch)]
    ];
    if (rec.imgsz !== undefined) {
      recRows.push(['Image size', `${rec.imgsz} px`]);
    }
    recRows.push(['Dataloader workers', String(rec.workers)]);
    if (rec.amp !== undefined) {
      recRows.push(['Mixed precision (AMP)', rec.amp ? 'yes' : 'no']);
    }
    parts.push(table(recRows, 'jp-yolo-Report-recommendation'));
    if (rec.reason) {
      parts.push(el('p', 'jp-yolo-Report-reason', rec.reason));
    }
    const speed = rec.speed?.choices ?? [];
    if (speed.length) {
      parts.push(el('h3', '', 'Training jobs choose'));
      parts.push(
        table(
          speed.map(c => [`${c.name} = ${String(c.value)}`, c.reason] as [string, string]),
          'jp-yolo-Report-speed'
        )
      );
    }

    const warnings = report.warnings ?? [];
    if (warnings.length) {
      parts.push(el('h3', '', `Warnings (${warnings.length})`));
      const list = el('ul', 'jp-yolo-Report-warnings');
      for (const warning of warnings) {
        const item = el('li');
        item.dataset.code = warning.code;
        item.append(document.createTextNode(`${warning.message} `), el('code', '', warning.code));
        list.append(item);
      }
      parts.push(list);
    }

    parts.push(el('h3', '', 'This machine'));
    parts.push(table(summaryRows(report), 'jp-yolo-Report-summary'));
    parts.push(...clusterSection(report as IAcceleratorReport & IClusterFields));

    const devices = report.devices ?? {};
    const sections: [string, unknown][] = [
      ['Host', report.host],
      ['PyTorch', report.torch]
    ];
    for (const [key, title] of Object.entries(BACKENDS)) {
      sections.push([title, devices[key]]);
    }
    sections.push(['Inference runtimes', runtimes(devices)]);
    sections.push(['Jetson', devices.jetson]);
    sections.push(['Device nodes torch cannot use', report.unusable_device_nodes]);
    for (const [title, value] of sections) {
      const shown = prune(value);
      if (shown !== undefined) {
        const details = el('details', 'jp-yolo-Report-details');
        details.append(el('summary', '', title), renderValue(shown, ''));
        parts.push(details);
      }
    }
    if (report.generated_at !== undefined) {
      const when =
        typeof report.generated_at === 'number'
          ? new Date(report.generated_at * 1000).toLocaleString()
          : new Date(report.generated_at).toLocaleString();
      parts.push(el('p', 'jp-yolo-Report-time', `Probed at ${when}.`));
    }
    this.body.replaceChildren(...parts);
  }
}

/** Accelerator lists of the report's `devices`, by the title of their section. */
const BACKENDS: Record<string, string> = {
  cuda: 'NVIDIA GPUs (CUDA)',
  rocm: 'AMD GPUs (ROCm)',
  xpu: 'Intel GPUs (XPU)',
  npu: 'Ascend NPUs',
  nvml: 'NVIDIA driver (NVML)'
};

/** Human labels of the report's field names; others are spelled out from the name. */
const LABELS: Record<string, string> = {
  cpu_model: 'CPU',
  cpu_count: 'CPU cores',
  affinity_cpus: 'CPUs this process may use',
  cgroup_version: 'cgroup version',
  cpu_quota: 'CPU quota (container)',
  cpus_usable: 'CPUs usable',
  memory_total_bytes: 'Memory',
  memory_available_bytes: 'Memory available',
  memory_limit_bytes: 'Memory limit (container)',
  memory_effective_bytes: 'Memory usable',
  memory_bytes: 'Memory',
  shm: 'Shared memory (/dev/shm)',
  size_bytes: 'Size',
  free_bytes: 'Free',
  device_nodes: 'Device nodes',
  tegra_release: 'L4T release',
  board_model: 'Board',
  platform: 'Operating system',
  version: 'Version',
  cuda: 'CUDA',
  hip: 'ROCm (HIP)',
  cudnn: 'cuDNN',
  debug: 'Debug build',
  arch_list: 'GPU architectures built for',
  cuda_available: 'CUDA available',
  device_count: 'Devices visible',
  num_threads: 'Threads',
  capability: 'Compute capability',
  driver: 'Driver',
  full_name: 'Name',
  providers: 'Providers',
  mig: 'MIG slice',
  integrated: 'Shares memory with the CPU',
  accessible: 'Accessible',
  path: 'Path',
  family: 'Family',
  cause: 'Cause'
};

/** A scalar as text ('' for anything else). */
function str(value: unknown): string {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
    ? String(value)
    : '';
}

function label(key: string): string {
  if (LABELS[key]) {
    return LABELS[key];
  }
  const words = key.replace(/_bytes$/, '').replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The few facts a person looks for first: CPU, memory, accelerators, torch build. */
function summaryRows(report: IAcceleratorReport): [string, string][] {
  const host = report.host ?? {};
  const torch = report.torch ?? {};
  const devices = report.devices ?? {};
  const rows: [string, string][] = [];
  const cpus = host.cpus_usable;
  const cores = host.cpu_count;
  if (host.cpu_model || cpus !== undefined) {
    const count =
      cpus === cores || cores === undefined ? str(cpus) : `${str(cpus)} of ${str(cores)}`;
    rows.push(['CPU', `${str(host.cpu_model) || 'CPU'} (${count} usable)`]);
  }
  const memory = host.memory_effective_bytes ?? host.memory_total_bytes;
  if (typeof memory === 'number') {
    const limit = host.memory_limit_bytes;
    rows.push([
      'Memory',
      formatGiB(memory) + (typeof limit === 'number' ? ' (container limit)' : '')
    ]);
  }
  const accelerators: string[] = [];
  for (const key of ['cuda', 'rocm', 'xpu', 'npu']) {
    const list = devices[key];
    if (Array.isArray(list)) {
      for (const device of list as Record<string, unknown>[]) {
        const size =
          typeof device.memory_bytes === 'number' ? `, ${formatGiB(device.memory_bytes)}` : '';
        accelerators.push(`${str(device.name) || key.toUpperCase()}${size}`);
      }
    }
  }
  if (devices.mps) {
    accelerators.push('Apple GPU (MPS)');
  }
  rows.push(['Accelerators', accelerators.length ? accelerators.join('; ') : 'none (CPU only)']);
  if (torch.version) {
    const build = torch.cuda
      ? `CUDA ${str(torch.cuda)}`
      : torch.hip
        ? `ROCm ${str(torch.hip)}`
        : 'CPU build';
    rows.push(['PyTorch', `${str(torch.version)} (${build})`]);
  }
  return rows;
}

/** OpenVINO, ONNX Runtime and TensorRT, only those installed. */
function runtimes(devices: Record<string, unknown>): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  const openvino = devices.openvino as Record<string, unknown> | null | undefined;
  if (openvino) {
    const names = Array.isArray(openvino.devices)
      ? (openvino.devices as Record<string, unknown>[]).map(d => String(d.full_name ?? d.name))
      : [];
    out['OpenVINO'] = `${str(openvino.version)}${names.length ? ` on ${names.join(', ')}` : ''}`;
  }
  const onnx = devices.onnxruntime as Record<string, unknown> | null | undefined;
  if (onnx) {
    const providers = Array.isArray(onnx.providers) ? (onnx.providers as string[]).join(', ') : '';
    out['ONNX Runtime'] = `${str(onnx.version)}${providers ? ` (${providers})` : ''}`;
  }
  if (devices.tensorrt) {
    out['TensorRT'] = devices.tensorrt;
  }
  return Object.keys(out).length ? out : undefined;
}

/** `value` without what does not apply (null, empty lists and objects); undefined if nothing is left. */
function prune(value: unknown): unknown {
  if (value === null || value === undefined || value === '') {
    return undefined;
  }
  if (Array.isArray(value)) {
    const items = value.map(prune).filter(v => v !== undefined);
    return items.length ? items : undefined;
  }
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const kept = prune(v);
      if (kept !== undefined) {
        out[k] = kept;
      }
    }
    return Object.keys(out).length ? out : undefined;
  }
  return value;
}

/** `23.4 GiB` (or MiB under one GiB). */
function formatGiB(bytes: number): string {
  const gib = bytes / 2 ** 30;
  if (gib >= 1) {
    return `${gib >= 100 ? gib.toFixed(0) : gib.toFixed(1)} GiB`;
  }
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

function table(rows: [string, string][], className = ''): HTMLTableElement {
  const node = el('table', `jp-yolo-Table ${className}`.trim());
  for (const [key, value] of rows) {
    const row = node.insertRow();
    row.insertCell().textContent = key;
    row.insertCell().textContent = value;
  }
  return node;
}

/** A pruned JSON value as labelled tables and lists; `*_bytes` numbers in GiB, booleans yes/no. */
function renderValue(value: unknown, key: string): HTMLElement {
  if (Array.isArray(value)) {
    const list = el('ul', 'jp-yolo-Report-list');
    for (const item of value) {
      const li = el('li');
      li.append(renderValue(item, key));
      list.append(li);
    }
    return list;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    if (key === 'platform') {
      const p = value as Record<string, unknown>;
      return el(
        'span',
        '',
        [str(p.system), str(p.release), p.machine ? `(${str(p.machine)})` : ''].join(' ').trim()
      );
    }
    const node = el('table', 'jp-yolo-Table');
    for (const [k, v] of entries) {
      const row = node.insertRow();
      row.insertCell().textContent = label(k);
      row.insertCell().append(renderValue(v, k));
    }
    return node;
  }
  if (typeof value === 'number' && key.endsWith('_bytes')) {
    return el('span', '', formatGiB(value));
  }
  if (typeof value === 'boolean') {
    return el('span', '', value ? 'yes' : 'no');
  }
  return el('span', '', typeof value === 'string' ? value : JSON.stringify(value));
}
