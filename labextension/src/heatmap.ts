/** A dependency-free SVG heatmap with the count in each cell (a confusion matrix). */
import { svg } from './charts';
import { el } from './format';

/** A heatmap of counts (`matrix[row][column]`), each cell labelled with its value. */
export class Heatmap {
  readonly node = el('div', 'jp-yolo-Heatmap');

  /**
   * Draw `matrix` with `rows` and `columns` labels; `normalize` divides each column by its sum
   * (the share of each true class predicted as each row).
   */
  draw(
    rows: string[],
    columns: string[],
    matrix: number[][],
    options: { rowLabel: string; columnLabel: string; normalize: boolean }
  ): void {
    const n = rows.length;
    const m = columns.length;
    const cell = Math.max(22, Math.min(44, Math.floor(480 / Math.max(n, m, 1))));
    const left = 12 + 7 * Math.max(...rows.map(r => r.length), 4);
    const top = 12 + 7 * Math.max(...columns.map(c => c.length), 4);
    const width = left + cell * m + top; // room for the last rotated column label
    const height = top + cell * n + 24;
    const plot = svg('svg', {
      class: 'jp-yolo-Heatmap-plot',
      width,
      height,
      viewBox: `0 0 ${width} ${height}`
    });
    const sums = columns.map((_, j) => matrix.reduce((acc, row) => acc + (row[j] ?? 0), 0));
    const values = matrix.map(row =>
      row.map((v, j) => (options.normalize ? (sums[j] ? v / sums[j] : 0) : v))
    );
    const high = Math.max(...values.flat(), 1e-9);
    let cells = 0;
    values.forEach((row, i) => {
      row.forEach((value, j) => {
        const share = value / high;
        const rect = svg('rect', {
          class: 'jp-yolo-Heatmap-cell',
          x: left + j * cell,
          y: top + i * cell,
          width: cell - 1,
          height: cell - 1,
          fill: `rgba(31, 119, 180, ${(0.06 + 0.94 * share).toFixed(3)})`
        });
        const raw = matrix[i][j] ?? 0;
        const title = svg('title');
        title.textContent =
          `true ${columns[j]}, predicted ${rows[i]}: ${raw}` +
          (options.normalize ? ` (${(value * 100).toFixed(0)}%)` : '');
        rect.append(title);
        plot.append(rect);
        cells += 1;
        if (value > 0) {
          const text = svg('text', {
            class: 'jp-yolo-Heatmap-count',
            x: left + j * cell + cell / 2,
            y: top + i * cell + cell / 2 + 4,
            'text-anchor': 'middle',
            fill: share > 0.55 ? '#fff' : '#222'
          });
          text.textContent = options.normalize ? value.toFixed(2) : String(Math.round(raw));
          plot.append(text);
        }
      });
    });
    rows.forEach((name, i) => {
      const text = svg('text', {
        class: 'jp-yolo-Chart-tick',
        x: left - 4,
        y: top + i * cell + cell / 2 + 4,
        'text-anchor': 'end'
      });
      text.textContent = name;
      plot.append(text);
    });
    columns.forEach((name, j) => {
      const x = left + j * cell + cell / 2;
      const text = svg('text', {
        class: 'jp-yolo-Chart-tick',
        x,
        y: top - 4,
        transform: `rotate(-45 ${x} ${top - 4})`
      });
      text.textContent = name;
      plot.append(text);
    });
    const caption = svg('text', { class: 'jp-yolo-Chart-axis', x: left, y: height - 6 });
    caption.textContent = `rows: ${options.rowLabel} · columns: ${options.columnLabel}`;
    plot.append(caption);
    this.node.dataset.cells = String(cells);
    this.node.replaceChildren(plot);
  }
}
