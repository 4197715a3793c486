/**
 * The full accelerator report in a main area tab: device, recommendation, warnings, host, torch
 * build and every backend's devices, with a button that probes the hardware again.
 */
import { Widget } from '@lumino/widgets';

import { IAcceleratorReport } from './api';
import { el, formatBytes } from './format';
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

    const rec = report.recommendation;
    parts.push(el('h3', '', 'Recommendation'));
    parts.push(
      table([
        ['device', rec.device],
        ['model', rec.model],
        ['batch', String(rec.batch)],
        ['dataloader workers', String(rec.workers)],
        ['mixed precision (amp)', rec.amp === undefined ? '' : String(rec.amp)]
      ])
    );
    if (rec.reason) {
      parts.push(el('p', 'jp-yolo-Report-reason', rec.reason));
    }

    const warnings = report.warnings ?? [];
    parts.push(el('h3', '', warnings.length ? `Warnings (${warnings.length})` : 'Warnings'));
    if (warnings.length) {
      const list = el('ul', 'jp-yolo-Report-warnings');
      for (const warning of warnings) {
        const item = el('li');
        item.dataset.code = warning.code;
        item.append(el('code', '', warning.code), document.createTextNode(` ${warning.message}`));
        list.append(item);
      }
      parts.push(list);
    } else {
      parts.push(el('p', '', 'None.'));
    }

    for (const [title, value] of [
      ['Host', report.host],
      ['Torch', report.torch],
      ['Devices', report.devices],
      ['Device nodes torch cannot use', report.unusable_device_nodes]
    ] as const) {
      if (value !== undefined && value !== null) {
        parts.push(el('h3', '', title), renderValue(value, ''));
      }
    }
    if (report.generated_at !== undefined) {
      const when =
        typeof report.generated_at === 'number'
          ? new Date(report.generated_at * 1000).toLocaleString()
          : report.generated_at;
      parts.push(el('p', 'jp-yolo-Report-time', `Probed at ${when}.`));
    }
    this.body.replaceChildren(...parts);
  }
}

function table(rows: [string, string][]): HTMLTableElement {
  const node = el('table', 'jp-yolo-Table');
  for (const [key, value] of rows) {
    const row = node.insertRow();
    row.insertCell().textContent = key;
    row.insertCell().textContent = value;
  }
  return node;
}

/** Any JSON value as nested tables and lists; `*_bytes` numbers as sizes. */
function renderValue(value: unknown, key: string): HTMLElement {
  if (Array.isArray(value)) {
    if (value.length === 0) {
      return el('span', 'jp-yolo-Report-none', 'none');
    }
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
    if (entries.length === 0) {
      return el('span', 'jp-yolo-Report-none', 'none');
    }
    const node = el('table', 'jp-yolo-Table');
    for (const [k, v] of entries) {
      const row = node.insertRow();
      row.insertCell().textContent = k;
      row.insertCell().append(renderValue(v, k));
    }
    return node;
  }
  if (value === null || value === undefined) {
    return el('span', 'jp-yolo-Report-none', '—');
  }
  if (typeof value === 'number' && key.endsWith('_bytes')) {
    return el('span', '', formatBytes(value));
  }
  return el('span', '', typeof value === 'string' ? value : JSON.stringify(value));
}
