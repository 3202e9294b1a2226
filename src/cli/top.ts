/** `perfcatch top`: a live view of the slowest and the most CPU-hungry recent requests. */
import { booleanFlag, numberFlag, stringFlag } from './args.ts';
import { PROCESS_FLAG, SINCE_FLAG, type Command, type CommandContext } from './context.ts';
import { statusColor } from './detail.ts';
import { formatAge, formatMs, renderJson, renderTable, requestSummary, type Cell, type Column, type Paint } from './format.ts';
import type { RequestSource } from './sources.ts';
import type { RequestRecord } from '../types.ts';

export const TOP_DEFAULT_INTERVAL = 2;
export const TOP_DEFAULT_LIMIT = 10;
export const TOP_DEFAULT_SINCE = 5;
/** Newest requests looked at per frame. */
export const TOP_SCAN = 5000;

const CLEAR = '\x1b[H\x1b[2J';

export const TOP: Command = {
  name: 'top',
  summary: 'live view of the slowest and the most CPU-hungry recent requests',
  usage: `Usage: perfcatch top [--interval SEC] [--limit N] [--since MIN] [--process NAME] [--once] [options]

Two tables, redrawn every SEC seconds on a terminal (Ctrl-C quits): the slowest and the
most CPU-hungry of the newest ${TOP_SCAN} requests of the last MIN minutes. With --once, --json,
or when the output is not a terminal, prints one frame and exits.

Options:
  --interval SEC   seconds between refreshes (default ${TOP_DEFAULT_INTERVAL})
  --limit N        rows per table (default ${TOP_DEFAULT_LIMIT})
  --since MIN      time window in minutes (default ${TOP_DEFAULT_SINCE})
  --process NAME   only requests served by this service or process name
  --once           print one frame and exit
`,
  flags: {
    interval: { kind: 'number', min: 0.1, max: 3600 },
    limit: { kind: 'integer', min: 1, max: 1000 },
    since: SINCE_FLAG,
    process: PROCESS_FLAG,
    once: { kind: 'boolean' },
  },
  positionals: 0,
  async run(ctx) {
    const opts: TopOptions = {
      limit: numberFlag(ctx.args, 'limit') ?? TOP_DEFAULT_LIMIT,
      since: numberFlag(ctx.args, 'since') ?? TOP_DEFAULT_SINCE,
      process: stringFlag(ctx.args, 'process'),
    };
    const intervalMs = (numberFlag(ctx.args, 'interval') ?? TOP_DEFAULT_INTERVAL) * 1000;
    const source = await ctx.source();
    const live = ctx.io.stdout.isTTY === true && !booleanFlag(ctx.args, 'once') && !ctx.json;

    // The first frame's errors (unreachable API, …) end the command like any other.
    const first = await takeFrame(source, opts);
    if (!live) {
      ctx.write(ctx.json ? renderJson(frameJson(first, opts)) : renderFrame(first, opts, source.description, ctx.now(), ctx.paint));
      return 0;
    }
    await liveLoop(ctx, source, opts, intervalMs, first);
    return 0;
  },
};

export interface TopOptions {
  limit: number;
  since: number;
  process: string | undefined;
}

export interface TopFrame {
  /** Requests looked at (at most TOP_SCAN). */
  scanned: number;
  slowest: RequestRecord[];
  hungriest: RequestRecord[];
}

async function takeFrame(source: RequestSource, opts: TopOptions): Promise<TopFrame> {
  const list = await source.requests({
    since_minutes: opts.since,
    limit: TOP_SCAN,
    ...(opts.process !== undefined ? { process: opts.process } : {}),
  });
  return {
    scanned: list.length,
    slowest: [...list].sort((a, b) => b.duration_ms - a.duration_ms).slice(0, opts.limit),
    hungriest: [...list].sort((a, b) => b.cpu_time_ms - a.cpu_time_ms).slice(0, opts.limit),
  };
}

function frameJson(f: TopFrame, opts: TopOptions): unknown {
  return { since_minutes: opts.since, process: opts.process ?? null, scanned: f.scanned, slowest: f.slowest.map(requestSummary), cpu: f.hungriest.map(requestSummary) };
}

function table(list: RequestRecord[], first: 'duration' | 'cpu', now: number, paint: Paint): string {
  const dur: Column = { header: 'DUR MS', align: 'right' };
  const cpu: Column = { header: 'CPU MS', align: 'right' };
  const columns: Column[] = [
    ...(first === 'duration' ? [dur, cpu] : [cpu, dur]),
    { header: 'STATUS', align: 'right' },
    { header: 'SERVICE', maxWidth: 24 },
    { header: 'REQUEST', maxWidth: 48 },
    { header: 'AGO', align: 'right' },
    { header: 'ID' },
  ];
  const rows = list.map((r): Cell[] => {
    const d: Cell = { text: formatMs(r.duration_ms), color: first === 'duration' ? 'bold' : undefined };
    const c: Cell = { text: formatMs(r.cpu_time_ms), color: first === 'cpu' ? 'bold' : undefined };
    return [
      ...(first === 'duration' ? [d, c] : [c, d]),
      { text: r.http_status === null ? '-' : String(r.http_status), color: statusColor(r.http_status) },
      r.service_name,
      `${r.http_method ?? '-'} ${r.http_path ?? '-'}`,
      formatAge(now - r.timestamp),
      r.request_id,
    ];
  });
  return rows.length ? renderTable(columns, rows, paint) : paint('dim', '(no requests)') + '\n';
}

export function renderFrame(f: TopFrame, opts: TopOptions, where: string, now: number, paint: Paint): string {
  const filter = opts.process !== undefined ? `, process ${opts.process}` : '';
  const scanned = f.scanned >= TOP_SCAN ? `newest ${f.scanned}` : String(f.scanned);
  const clock = new Date(now * 1000).toISOString().slice(11, 19);
  return (
    paint('bold', 'perfcatch top') +
    `  ${where}  ${scanned} requests in the last ${opts.since} min${filter}  ${clock} UTC\n\n` +
    paint('cyan', 'SLOWEST') + '\n' + table(f.slowest, 'duration', now, paint) + '\n' +
    paint('cyan', 'MOST CPU') + '\n' + table(f.hungriest, 'cpu', now, paint)
  );
}

/** Redraws until aborted (io.signal, else SIGINT/SIGTERM); refresh errors show in the frame. */
async function liveLoop(ctx: CommandContext, source: RequestSource, opts: TopOptions, intervalMs: number, first: TopFrame): Promise<void> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  const external = ctx.io.signal;
  if (external) {
    if (external.aborted) stop();
    external.addEventListener('abort', stop, { once: true });
  } else {
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  }
  try {
    let frame = first;
    let error: string | null = null;
    while (!controller.signal.aborted) {
      let text = CLEAR + renderFrame(frame, opts, source.description, ctx.now(), ctx.paint);
      if (error !== null) text += '\n' + ctx.paint('red', `refresh failed: ${error}`) + '\n';
      ctx.write(text);
      await sleep(intervalMs, controller.signal);
      if (controller.signal.aborted) break;
      try {
        frame = await takeFrame(source, opts);
        error = null;
      } catch (err) {
        error = err instanceof Error ? err.message : String(err); // keep the last frame
      }
    }
  } finally {
    if (external) external.removeEventListener('abort', stop);
    else {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
