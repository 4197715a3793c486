/**
 * A job's log made readable in the results view (as the notebook panel's console does it): no
 * terminal colours, progress bars' carriage returns resolved to their last state, no emoji
 * (Debian has no font for them) and absolute workspace paths made workspace-relative.
 */

const ABSOLUTE = /(?<![\w./:])\/[^\s'"(),:]+/g;
const WORKSPACE_PART = /\/(?:jobs|datasets|weights)\//;
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;
const EMOJI = /[\u{1F000}-\u{1FAFF}\u2600-\u27BF]|\uFE0F/gu;

/** Lines of the log shown at most. */
export const CONSOLE_LINES = 400;

/** An absolute path from its first `jobs/`, `datasets/` or `weights/` folder on. */
export function relativePath(path: string): string {
  const part = WORKSPACE_PART.exec(path);
  return part ? path.slice(part.index + 1) : path;
}

/** Absolute workspace paths in `text` made workspace-relative. */
export function relativePaths(text: string): string {
  return text.replace(ABSOLUTE, relativePath);
}

/**
 * The log's last `lines` lines, cleaned for reading. The workspace root is read off the job's
 * own folder (`<root>/jobs/<jobId>/`); any other path into `jobs/`, `datasets/` or `weights/` is
 * cut there.
 */
export function consoleText(log: string, jobId: string, lines = CONSOLE_LINES): string {
  const cleaned = log.replace(ANSI, '').replace(EMOJI, '');
  const out = cleaned.split('\n').map(line => {
    const parts = line.replace(/\r+$/, '').split('\r');
    return parts[parts.length - 1];
  });
  while (out.length && !out[out.length - 1]) {
    out.pop();
  }
  let text = out.slice(-lines).join('\n');
  const escaped = jobId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const root = new RegExp(`(/[^\\s'"(),:]*?)/jobs/${escaped}\\b`).exec(cleaned);
  if (root && root[1]) {
    text = text.split(`${root[1]}/`).join('');
  }
  return relativePaths(text);
}
