/** The extension's icon: a detection box around a dot, drawn in the theme's icon colour. */
import { LabIcon } from '@jupyterlab/ui-components';

const yoloSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M3 3h6v2H5v4H3zm12 0h6v6h-2V5h-4zM3 15h2v4h4v2H3zm16 0h2v6h-6v-2h4z"/>
    <circle cx="12" cy="12" r="3.5"/>
  </g>
</svg>`;

export const yoloIcon = new LabIcon({ name: 'jupyter-yolo:yolo', svgstr: yoloSvg });
