/**
 * jupyter-yolo's JupyterLab front end: the accelerator status bar item with its report, the
 * "YOLO jobs" sidebar, and the "YOLO quickstart" launcher card and command. Everything it shows
 * comes from the server's REST API under `/yolo/`.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import { IJob, IWorkspaceLocation, getWorkspaceLocation } from './api';
import { yoloIcon } from './icons';
import { CompareView } from './compare';
import { ArtifactsView, LogView } from './jobviews';
import { CATEGORY, addQuickstart } from './launcher';
import { ReportView } from './report';
import { ResultsView } from './results';
import { JobsPanel } from './sidebar';
import { AcceleratorStatus } from './statusbar';

const COMMANDS = {
  report: 'jupyter-yolo:accelerator-report',
  jobs: 'jupyter-yolo:show-jobs'
};

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-yolo:plugin',
  description: 'Accelerator status, YOLO jobs sidebar and quickstart launcher for jupyter-yolo.',
  autoStart: true,
  optional: [IStatusBar, ILauncher, ICommandPalette, ILayoutRestorer, IDefaultFileBrowser],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    launcher: ILauncher | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    fileBrowser: IDefaultFileBrowser | null
  ): void => {
    // ---- accelerator status and report
    let reportTab: MainAreaWidget<ReportView> | null = null;
    const status = new AcceleratorStatus(() => void app.commands.execute(COMMANDS.report));
    app.commands.addCommand(COMMANDS.report, {
      label: 'YOLO: accelerator report',
      caption: 'The hardware this server offers to YOLO, with recommendations and warnings',
      icon: yoloIcon,
      execute: () => {
        if (reportTab === null || reportTab.isDisposed) {
          const content = new ReportView(refresh => status.loadReport(refresh));
          reportTab = new MainAreaWidget({ content });
          reportTab.id = 'jp-yolo-report';
          reportTab.title.label = 'Accelerators';
          reportTab.title.icon = yoloIcon;
          reportTab.title.closable = true;
          app.shell.add(reportTab, 'main');
          const cached = status.currentReport;
          if (cached) {
            content.render(cached);
          } else {
            void content.refresh(false);
          }
        }
        app.shell.activateById(reportTab.id);
      }
    });
    if (statusBar) {
      statusBar.registerStatusItem('jupyter-yolo:accelerator', {
        item: status,
        align: 'left',
        rank: 100
      });
    }
    void status.start();

    // ---- jobs sidebar
    let workspace: Promise<IWorkspaceLocation> | null = null;
    const panel = new JobsPanel({
      openLog: (job: IJob) => openLog(app, job),
      openResults: (job: IJob) => openResults(app, job),
      openCompare: (jobs: IJob[]) => openCompare(app, jobs),
      openFolder: async (job: IJob) => {
        workspace ??= getWorkspaceLocation().catch(error => {
          workspace = null;
          throw error;
        });
        const { server_path } = await workspace;
        if (server_path !== null && fileBrowser) {
          const path = PathExt.join(server_path, job.folder);
          await fileBrowser.model.cd(`/${path}`);
          app.shell.activateById(fileBrowser.id);
        } else {
          openArtifacts(app, job);
        }
      }
    });
    panel.title.icon = yoloIcon;
    app.shell.add(panel, 'left', { rank: 950 });
    restorer?.add(panel, 'jupyter-yolo-jobs');
    app.commands.addCommand(COMMANDS.jobs, {
      label: 'YOLO: show jobs',
      caption: 'Open the YOLO jobs sidebar',
      icon: yoloIcon,
      execute: () => app.shell.activateById(panel.id)
    });

    // ---- launcher card and palette
    addQuickstart(app, launcher, palette);
    for (const command of Object.values(COMMANDS)) {
      palette?.addItem({ command, category: CATEGORY });
    }
  }
};

function openLog(app: JupyterFrontEnd, job: IJob): void {
  openOnce(app, `jp-yolo-log-${job.id}`, `Log ${job.id}`, () => {
    const view = new LogView(job.id);
    void view.load().catch(() => undefined);
    return view;
  });
}

function openResults(app: JupyterFrontEnd, job: IJob): void {
  const label = job.name ? `Results: ${job.name}` : `Results ${job.id}`;
  openOnce(app, `jp-yolo-results-${job.id}`, label, () => {
    const view = new ResultsView(job.id, job.data);
    void view.load().catch(() => undefined);
    return view;
  });
}

function openCompare(app: JupyterFrontEnd, jobs: IJob[]): void {
  const ids = jobs.map(job => job.id);
  openOnce(app, `jp-yolo-compare-${ids.join('-')}`, `Compare ${ids.length} runs`, () => {
    const view = new CompareView(ids, Object.fromEntries(jobs.map(job => [job.id, job.data])));
    void view.load();
    return view;
  });
}

function openArtifacts(app: JupyterFrontEnd, job: IJob): void {
  openOnce(app, `jp-yolo-artifacts-${job.id}`, `Results ${job.id}`, () => {
    const view = new ArtifactsView(job);
    void view.load();
    return view;
  });
}

/** Activate the tab `id`, creating it with `make` the first time. */
function openOnce(app: JupyterFrontEnd, id: string, label: string, make: () => Widget): void {
  const existing = Array.from(app.shell.widgets('main')).find(widget => widget.id === id);
  if (existing) {
    app.shell.activateById(id);
    return;
  }
  const tab = new MainAreaWidget({ content: make() });
  tab.id = id;
  tab.title.label = label;
  tab.title.icon = yoloIcon;
  tab.title.closable = true;
  app.shell.add(tab, 'main');
  app.shell.activateById(id);
}

export default plugin;
