/** Errors and confirmations as JupyterLab notifications, with the server's own message. */
import { Notification } from '@jupyterlab/apputils';

import { YoloApiError } from './api';

/** The message of anything thrown, preferring the server's JSON `message`. */
export function messageOf(error: unknown): string {
  if (error instanceof YoloApiError || error instanceof Error) {
    return error.message;
  }
  return String(error);
}

/** Show `what failed: server message` as an error notification. */
export function notifyError(what: string, error: unknown): void {
  Notification.error(`${what}: ${messageOf(error)}`, { autoClose: 10000 });
}

export function notifyInfo(message: string): void {
  Notification.info(message, { autoClose: 4000 });
}
