/**
 * "YOLO quickstart": the server copies the shipped quickstart notebook into the workspace under
 * a name that overwrites nothing (quickstart.ipynb, quickstart-1.ipynb ...) and the copy opens.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';

import { copyNotebook } from './api';
import { yoloIcon } from './icons';
import { notifyError } from './notify';

export const QUICKSTART_COMMAND = 'jupyter-yolo:quickstart';
export const CATEGORY = 'YOLO';

export function addQuickstart(
  app: JupyterFrontEnd,
  launcher: ILauncher | null,
  palette: ICommandPalette | null
): void {
  app.commands.addCommand(QUICKSTART_COMMAND, {
    label: 'YOLO quickstart',
    caption: 'Copy the YOLO quickstart notebook into the workspace and open it',
    icon: yoloIcon,
    execute: async () => {
      try {
        const copy = await copyNotebook('quickstart');
        await app.commands.execute('docmanager:open', { path: copy.path });
      } catch (error) {
        notifyError('The quickstart notebook could not be opened', error);
      }
    }
  });
  launcher?.add({ command: QUICKSTART_COMMAND, category: CATEGORY, rank: 0 });
  palette?.addItem({ command: QUICKSTART_COMMAND, category: CATEGORY });
}
