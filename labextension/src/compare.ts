/**
 * The run comparison view: several jobs picked in the sidebar, their metric and loss curves per
 * epoch overlaid (one colour per run, with a legend and a metric picker), and a table of their
 * best metrics and parameters with the parameters that differ highlighted.
 */
import { Widget } from '@lumino/widgets';

import { IEpochEvent, IRunResults, ITaskTable, getResults, runEpochs, tasksOnce } from './api';
import { LineChart, PALETTE } from './charts';
import { el, totalLoss } from './format';
import { messageOf } from './notify';
import { metricLabel, metricText, paramText } from './resultparts';
import { formatTime, runDuration } from './results';

interface IRun {
  id: string;
  color: string;
  results: IRunResults | null;
  epochs: IEpochEvent[];
  error: string | null;
}

export class CompareView extends Widget {
  private readonly message = el('p', 'jp-yolo-Results-message');
  private readonly picker = el('select', 'jp-yolo-Compare-metric');
  private readonly charts = el('div', 'jp-yolo-Results-chartGrid');
  private readonly table = el('div', 'jp-yolo-Results-classWrap');
  private runs: IRun[] = [];
  private tasks: ITaskTable | null = null;

  /** `datasets`: each job's dataset as the job list names it (its parameters hold a path). */
  constructor(
    readonly jobIds: string[],
    private readonly datasets: Record<string, string | null> = {}
  ) {
    super();
    this.addClass('jp-yolo-Results');
    this.addClass('jp-yolo-Compare');
    const header = el('header', 'jp-yolo-Results-header');
    const refresh = el('button', 'jp-yolo-Button', 'Refresh');
    refresh.title = 'Read the runs from the server again';
    refresh.addEventListener('click', () => void this.load());
    header.append(el('h2', 'jp-yolo-Results-title', `Comparing ${jobIds.length} runs`), refresh);
    const bar = el('label', 'jp-yolo-Results-toolbar', 'Metric ');
    bar.append(this.picker);
    this.picker.addEventListener('change', () => this.drawCharts());
    const curves = el('section', 'jp-yolo-Results-section');
    curves.append(el('h3', '', 'Curves per epoch'), bar, this.charts);
    const table = el('section', 'jp-yolo-Results-section');
    table.append(el('h3', '', 'Best metrics and parameters'), this.table);
    this.message.hidden = true;
    this.node.append(header, this.message, curves, table);
  }

  /** Read every run's results and epochs, then draw. */
  async load(): Promise<void> {
    this.tasks = this.tasks ?? (await tasksOnce());
    this.runs = await Promise.all(
      this.jobIds.map(async (id, i): Promise<IRun> => {
        const run: IRun = {
          id,
          color: PALETTE[i % PALETTE.length],
          results: null,
          epochs: [],
          error: null
        };
        try {
          run.results = await getResults(id);
          run.epochs = await runEpochs(id, run.results);
        } catch (error) {
          run.error = messageOf(error);
        }
        return run;
      })
    );
    const problems = this.runs.filter(r => r.error).map(r => `job ${r.id}: ${r.error}`);
    this.message.textContent = problems.length ? `Not compared: ${problems.join('; ')}` : '';
    this.message.hidden = !problems.length;
    const keys = [
      ...new Set(this.runs.flatMap(r => r.epochs.flatMap(e => Object.keys(e.metrics ?? {}))))
    ];
    const headline = this.runs.find(r => r.results)?.results?.headline ?? keys[0] ?? '';
    const keep = this.picker.value;
    this.picker.replaceChildren(
      ...keys.map(key => {
        const option = el('option', '', metricLabel(key, this.tasks));
        option.value = key;
        return option;
      })
    );
    this.picker.value = keys.includes(keep) ? keep : headline;
    this.drawCharts();
    this.drawTable();
  }

  private name(run: IRun): string {
    const r = run.results;
    return r?.name ? `${r.name} (${run.id})` : run.id;
  }

  private drawCharts(): void {
    const key = this.picker.value;
    const runs = this.runs.filter(r => r.epochs.length);
    const metric = new LineChart({
      title: metricLabel(key, this.tasks),
      xLabel: 'epoch',
      integerX: true,
      yLabel: metricLabel(key, this.tasks),
      width: 460,
      height: 260
    });
    metric.draw(
      runs.map(run => ({
        name: this.name(run),
        color: run.color,
        x: run.epochs.map(e => e.epoch),
        y: run.epochs.map(e => e.metrics?.[key] ?? null)
      }))
    );
    const loss = new LineChart({
      title: 'Total loss (dashed: validation)',
      xLabel: 'epoch',
      integerX: true,
      yLabel: 'loss',
      width: 460,
      height: 260
    });
    loss.draw(
      runs
        .flatMap(run => [
          {
            name: `${this.name(run)} train`,
            color: run.color,
            x: run.epochs.map(e => e.epoch),
            y: run.epochs.map(e => totalLoss(e.loss))
          },
          {
            name: `${this.name(run)} val`,
            color: run.color,
            dashed: true,
            x: run.epochs.map(e => e.epoch),
            y: run.epochs.map(e => totalLoss(numbers(e.val_loss)))
          }
        ])
        .filter(s => s.y.some(v => v !== null))
    );
    metric.node.dataset.chart = 'compare-metric';
    loss.node.dataset.chart = 'compare-loss';
    this.charts.replaceChildren(metric.node, loss.node);
    if (!runs.length) {
      this.charts.append(
        el('p', 'jp-yolo-Results-message', 'None of these runs has a completed epoch yet.')
      );
    }
  }

  private drawTable(): void {
    const runs = this.runs.filter(r => r.results);
    const table = el('table', 'jp-yolo-Table jp-yolo-Compare-table');
    const head = table.createTHead().insertRow();
    head.append(el('th', '', ''));
    for (const run of runs) {
      const th = el('th', '', this.name(run));
      th.style.borderBottom = `3px solid ${run.color}`;
      head.append(th);
    }
    const body = table.createTBody();
    const add = (
      label: string,
      values: string[],
      kind: string,
      differs = false
    ): HTMLTableRowElement => {
      const tr = body.insertRow();
      tr.dataset.row = label;
      tr.className = `jp-yolo-mod-${kind}`;
      tr.classList.toggle('jp-yolo-mod-differs', differs);
      tr.insertCell().textContent = label;
      for (const value of values) {
        tr.insertCell().textContent = value;
      }
      return tr;
    };
    const results = runs.map(r => r.results as IRunResults);
    add(
      'status',
      results.map(r => r.status),
      'info'
    );
    add(
      'task',
      results.map(r => r.task),
      'info'
    );
    add(
      'started',
      results.map(r => formatTime(r.started ?? r.created)),
      'info'
    );
    add(
      'duration',
      results.map(r => runDuration(r.started, r.ended) || '—'),
      'info'
    );
    add(
      'best epoch',
      results.map(r => (r.best ? `${r.best.epoch} of ${r.epochs}` : '—')),
      'info'
    );
    const metricKeys = [
      ...new Set(results.flatMap(r => Object.keys(r.best?.metrics ?? r.final?.metrics ?? {})))
    ];
    for (const key of metricKeys) {
      const values = results.map(r => (r.best?.metrics ?? r.final?.metrics ?? {})[key] ?? null);
      const finite = values.filter((v): v is number => v !== null && Number.isFinite(v));
      const top = finite.length ? Math.max(...finite) : null;
      const tr = add(`best ${metricLabel(key, this.tasks)}`, values.map(metricText), 'metric');
      values.forEach((v, i) => {
        const unique = values.filter(other => other === top).length === 1;
        if (v === top && unique && key === results[0].headline) {
          tr.cells[i + 1].classList.add('jp-yolo-mod-best');
          tr.cells[i + 1].title = 'the best of these runs';
        }
      });
    }
    const paramKeys = [...new Set(results.flatMap(r => Object.keys(r.params)))].sort();
    for (const key of paramKeys) {
      const values = results.map(r =>
        key === 'data'
          ? (this.datasets[r.job_id] ?? paramText(r.params.data))
          : paramText(r.params[key])
      );
      add(key, values, 'param', new Set(values).size > 1);
    }
    this.table.replaceChildren(table);
  }
}

function numbers(record: Record<string, number | null> | null | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(record ?? {})) {
    if (value !== null) {
      out[key] = value;
    }
  }
  return out;
}
