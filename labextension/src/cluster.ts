/**
 * The Ray cluster of the `ray` executor as people see it: the status bar's label and tooltip, the
 * "Ray cluster" section of the hardware report, and where a job runs (executor, Ray node, Ray's
 * reason for a queued job). Everything comes from the server (`cluster` and `executors` of
 * `GET /yolo/accelerators`, `cluster` of its usage route, a job's `executor`, `queue_reason` and
 * `ray`): no resource name is written here.
 */
import { el, formatBytes } from './format';

/** One node of the cluster (`ClusterNode` of the contract). */
export interface IClusterNode {
  node_id: string;
  address: string;
  head: boolean;
  state: string;
  cpus: number;
  gpus: number;
  gpu_type: string | null;
  memory_bytes?: number;
  /** Custom resources by name. */
  resources: Record<string, number>;
}

/** `cluster` of `GET /yolo/accelerators` (`ClusterReport`), null without a cluster. */
export interface IClusterReport {
  address: string;
  reachable: boolean;
  ray_version: string | null;
  version_ok: boolean;
  error: string | null;
  nodes: IClusterNode[];
  usage: Record<string, { total: number; used: number }>;
  gpu_types: Record<string, number>;
}

export interface IResourceUse {
  total: number;
  used: number;
  free: number;
}

/** `cluster` of `GET /yolo/accelerators/usage`: what is free now. */
export interface IClusterUsage {
  address: string;
  reachable: boolean;
  error: string | null;
  nodes: number;
  cpu: IResourceUse;
  gpu: IResourceUse;
  gpu_types: Record<string, number>;
  resources: Record<string, IResourceUse>;
  /** Every node Ray knows, alive or dead. */
  members?: IClusterNode[];
}

/** `executors` of `GET /yolo/accelerators`. */
export interface IExecutors {
  available: string[];
  default: string;
}

/** What a report of a server with the Ray executor adds. */
export interface IClusterFields {
  cluster?: IClusterReport | null;
  executors?: IExecutors;
}

/** Where a job runs, as a job description of a server with the Ray executor says. */
export interface IJobPlacement {
  executor?: string;
  queue_reason?: string | null;
  ray?: {
    submission_id?: string;
    status?: string;
    message?: string | null;
    node_id?: string | null;
  } | null;
}

let knownCluster: IClusterReport | null = null;

/** Remember the last cluster report read (job rows name nodes by their address with it). */
export function rememberCluster(report: IClusterReport | null | undefined): void {
  knownCluster = report ?? null;
}

function amount(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

/** The status bar's text: "Ray 2 nodes · CPU 1/3 · GPU 0/0 free", or "Ray unreachable". */
export function clusterLabel(usage: IClusterUsage): string {
  if (!usage.reachable) {
    return 'Ray unreachable';
  }
  if (usage.error) {
    return 'Ray: not usable'; // the tooltip says why (another version, an odd answer)
  }
  return (
    `Ray ${plural(usage.nodes, 'node')} · CPU ${amount(usage.cpu.free)}/${amount(usage.cpu.total)}` +
    ` · GPU ${amount(usage.gpu.free)}/${amount(usage.gpu.total)} free`
  );
}

/** One line per node: address, CPUs, GPUs by type, custom resources, state. */
export function nodeLine(node: IClusterNode): string {
  const parts = [`${node.address}${node.head ? ' (head)' : ''}`, `${amount(node.cpus)} CPU`];
  if (node.gpus) {
    parts.push(`${amount(node.gpus)} GPU${node.gpu_type ? ` ${node.gpu_type}` : ''}`);
  }
  for (const [name, value] of Object.entries(node.resources ?? {})) {
    parts.push(`${name} ${amount(value)}`);
  }
  parts.push(node.state);
  return parts.join(', ');
}

/** The status bar's tooltip for the cluster: the error, or the use and every node. */
export function clusterTooltip(usage: IClusterUsage): string {
  const lines = [`Ray cluster at ${usage.address}`];
  if (usage.error) {
    lines.push(`⚠ ${usage.error}`);
    return lines.join('\n');
  }
  lines.push(
    `CPU: ${amount(usage.cpu.used)} used, ${amount(usage.cpu.free)} free of ${amount(usage.cpu.total)}`
  );
  const types = Object.entries(usage.gpu_types)
    .map(([type, count]) => `${count}× ${type}`)
    .join(', ');
  lines.push(
    `GPU: ${amount(usage.gpu.used)} used, ${amount(usage.gpu.free)} free of ${amount(usage.gpu.total)}` +
      (types ? ` (${types})` : '')
  );
  for (const [name, use] of Object.entries(usage.resources)) {
    lines.push(
      `${name}: ${amount(use.used)} used, ${amount(use.free)} free of ${amount(use.total)}`
    );
  }
  for (const node of usage.members ?? []) {
    lines.push(`• ${nodeLine(node)}`);
  }
  return lines.join('\n');
}

function table(rows: [string, string][], className: string): HTMLTableElement {
  const node = el('table', `jp-yolo-Table ${className}`);
  for (const [key, value] of rows) {
    const row = node.insertRow();
    row.insertCell().textContent = key;
    row.insertCell().textContent = value;
  }
  return node;
}

/** Ray counts memory resources in bytes: show those as sizes, every other one as a count. */
function quantity(name: string, value: number): string {
  return /memory/i.test(name) ? formatBytes(value) : amount(value);
}

/** The hardware report's "Ray cluster" section (nothing without a cluster). */
export function clusterSection(fields: IClusterFields): HTMLElement[] {
  const cluster = fields.cluster;
  if (!cluster) {
    return [];
  }
  const parts: HTMLElement[] = [el('h3', '', 'Ray cluster')];
  const section = el('div', 'jp-yolo-Report-cluster');
  parts.push(section);
  const rows: [string, string][] = [['Address', cluster.address]];
  if (fields.executors) {
    rows.push([
      'Executors',
      `${fields.executors.available.join(', ')} (default ${fields.executors.default})`
    ]);
  }
  rows.push(['Ray version', cluster.ray_version ?? 'unknown']);
  if (cluster.error) {
    const error = el('p', 'jp-yolo-Report-error', `⚠ ${cluster.error}`);
    section.append(table(rows, 'jp-yolo-Report-summary'), error);
    return parts;
  }
  const alive = cluster.nodes.filter(node => node.state === 'ALIVE').length;
  rows.push(['Nodes', `${alive} alive of ${cluster.nodes.length}`]);
  for (const [name, use] of Object.entries(cluster.usage)) {
    const free = Math.max(use.total - use.used, 0);
    rows.push([
      name,
      `${quantity(name, use.used)} used, ${quantity(name, free)} free of ${quantity(name, use.total)}`
    ]);
  }
  const types = Object.entries(cluster.gpu_types);
  if (types.length) {
    rows.push(['GPUs by type', types.map(([type, count]) => `${count}× ${type}`).join(', ')]);
  }
  section.append(table(rows, 'jp-yolo-Report-summary'));
  const nodes = el('table', 'jp-yolo-Report-nodes');
  const head = el('tr');
  for (const title of ['Node', 'Address', 'CPUs', 'GPUs', 'Custom resources', 'State']) {
    head.append(el('th', '', title));
  }
  nodes.append(head);
  for (const node of cluster.nodes) {
    const row = el('tr');
    row.dataset.state = node.state;
    const gpus = node.gpus
      ? `${amount(node.gpus)}${node.gpu_type ? ` ${node.gpu_type}` : ''}`
      : '0';
    const custom = Object.entries(node.resources ?? {})
      .map(([name, value]) => `${name} ${amount(value)}`)
      .join(', ');
    row.append(
      el('td', '', `${node.node_id.slice(0, 8)}${node.head ? ' (head)' : ''}`),
      el('td', '', node.address),
      el('td', '', amount(node.cpus)),
      el('td', '', gpus),
      el('td', '', custom || '—'),
      el('td', '', node.state)
    );
    nodes.append(row);
  }
  section.append(nodes);
  return parts;
}

/** A node's address when the last cluster report knows it, else its id's first characters. */
export function nodeName(nodeId: string): string {
  const node = knownCluster?.nodes.find(n => n.node_id === nodeId);
  return node ? node.address + (node.head ? ' (head)' : '') : nodeId.slice(0, 8);
}

/** Where a job runs ("Ray node 10.0.0.7", "Ray", "local"), or null for a server without Ray. */
export function placementText(job: IJobPlacement): string | null {
  if (!job.executor) {
    return null;
  }
  if (job.executor !== 'ray') {
    // the executor is news only where a cluster offers another one
    return knownCluster ? job.executor : null;
  }
  const node = job.ray?.node_id;
  return node ? `Ray node ${nodeName(node)}` : 'Ray';
}

/** Why Ray has not placed a queued job yet (its own words), or null. */
export function queueReason(job: IJobPlacement): string | null {
  return job.queue_reason || null;
}
