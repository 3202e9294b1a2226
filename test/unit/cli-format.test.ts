/**
 * The query commands' building blocks (units, tables, colour, flag parsing) and runCommand
 * against the real API server and a real SQLite database, both filled with known records.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { startApiServer, type ApiServer } from '../../src/api/server.ts';
import { parseArgs, UsageError } from '../../src/cli/args.ts';
import { COMMANDS, COMMANDS_USAGE, runCommand } from '../../src/cli/commands.ts';
import {
  colorEnabled,
  formatAge,
  formatBytes,
  formatMs,
  formatPercent,
  painter,
  renderTable,
  renderTree,
  stripAnsi,
  truncate,
} from '../../src/cli/format.ts';
import { requestQueryParams } from '../../src/cli/sources.ts';
import { RequestStore } from '../../src/store/request-store.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import type { RequestRecord } from '../../src/types.ts';
import { assertOneLineError as assertCliError } from '../harness/one-line-error.ts';
import { sampleRecord } from './sample-record.ts';

class Capture extends Writable {
  text = '';
  isTTY: boolean;
  constructor(isTTY = false) {
    super();
    this.isTTY = isTTY;
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

async function run(
  name: string,
  argv: string[],
  opts: { tty?: boolean; env?: Record<string, string | undefined> } = {},
): Promise<{ code: number; out: string; err: string }> {
  const stdout = new Capture(opts.tty ?? false);
  const stderr = new Capture();
  const code = await runCommand(name, argv, { stdout, stderr, env: opts.env ?? {} });
  return { code, out: stdout.text, err: stderr.text };
}

const assertOneLineError = (r: { code: number; out: string; err: string }, code: number, pattern: RegExp): void =>
  assertCliError({ code: r.code, stdout: r.out, stderr: r.err }, code, pattern);

describe('cli format: units', () => {
  it('formats bytes in binary units', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(1024), '1.00 KiB');
    assert.equal(formatBytes(1536), '1.50 KiB');
    assert.equal(formatBytes(20 * 1024), '20.0 KiB');
    assert.equal(formatBytes(1024 * 1024 - 1), '1.00 MiB');
    assert.equal(formatBytes(45.6 * 1024 * 1024), '45.6 MiB');
    assert.equal(formatBytes(3 * 1024 ** 3), '3.00 GiB');
    assert.equal(formatBytes(-1), '-');
  });

  it('formats milliseconds, percentages and ages', () => {
    assert.equal(formatMs(0.4242), '0.42');
    assert.equal(formatMs(12.345), '12.3');
    assert.equal(formatMs(1234.5), '1235');
    assert.equal(formatPercent(0), '0%');
    assert.equal(formatPercent(1), '100%');
    assert.equal(formatPercent(0.125), '12.5%');
    assert.equal(formatPercent(1 / 3), '33.3%');
    assert.equal(formatAge(3.4), '3s');
    assert.equal(formatAge(125), '2m');
    assert.equal(formatAge(7200), '2h');
    assert.equal(formatAge(3 * 86400), '3d');
    assert.equal(formatAge(-5), '0s');
    assert.equal(truncate('abcdef', 4), 'abc…');
    assert.equal(truncate('abc', 4), 'abc');
  });
});

describe('cli format: tables and colour', () => {
  const columns = [{ header: 'NAME' }, { header: 'N', align: 'right' as const }, { header: 'NOTE' }];
  const rows = [
    ['alpha', '1', { text: 'bad', color: 'red' as const }],
    ['b', '1234', 'ok'],
  ];

  it('aligns columns, right-aligns numbers, no trailing spaces, no ANSI without colour', () => {
    assert.equal(renderTable(columns, rows, painter(false)), ['NAME      N  NOTE', 'alpha     1  bad', 'b      1234  ok', ''].join('\n'));
  });

  it('with colour, paints only the text: stripping ANSI gives the plain table', () => {
    const coloured = renderTable(columns, rows, painter(true));
    assert.match(coloured, /\x1b\[31mbad\x1b\[39m/);
    assert.match(coloured, /\x1b\[1mNAME\x1b\[22m/);
    assert.equal(stripAnsi(coloured), renderTable(columns, rows, painter(false)));
  });

  it('cuts cells at maxWidth', () => {
    assert.equal(renderTable([{ header: 'P', maxWidth: 5 }], [['/a/very/long/path']], painter(false)), 'P\n/a/v…\n');
  });

  it('draws a tree', () => {
    assert.equal(renderTree(['a', 'b', 'c']), '├─ a\n├─ b\n└─ c\n');
    assert.equal(renderTree(['only']), '└─ only\n');
  });

  it('uses colour only on a TTY without NO_COLOR', () => {
    assert.equal(colorEnabled({ isTTY: true }, {}), true);
    assert.equal(colorEnabled({ isTTY: true }, { NO_COLOR: '1' }), false);
    assert.equal(colorEnabled({ isTTY: true }, { NO_COLOR: '' }), true, 'an empty NO_COLOR does not count');
    assert.equal(colorEnabled({ isTTY: false }, {}), false);
    assert.equal(colorEnabled({}, {}), false);
  });
});

describe('cli args', () => {
  const specs = {
    since: { kind: 'number' as const, min: 0, exclusiveMin: true, max: 100 },
    limit: { kind: 'integer' as const, min: 1, max: 10 },
    process: { kind: 'string' as const },
    once: { kind: 'boolean' as const },
  };

  it('parses --flag value, --flag=value, booleans, positionals and --', () => {
    const a = parseArgs(['--since', '2.5', '--limit=3', 'id-1', '--once', '--', '--process'], specs, 2);
    assert.equal(a.flags.get('since'), 2.5);
    assert.equal(a.flags.get('limit'), 3);
    assert.equal(a.flags.get('once'), true);
    assert.deepEqual(a.positionals, ['id-1', '--process']);
    assert.equal(a.help, false);
    assert.equal(parseArgs(['-h'], specs).help, true);
  });

  const bad: [string[], RegExp][] = [
    [['--nope'], /^unknown option --nope; expected one of --since, --limit, --process, --once, --help$/],
    [['-x'], /^unknown option -x/],
    [['--since'], /^--since: needs a value$/],
    [['--since', '--once'], /^--since: needs a value$/],
    [['--since', '0'], /^--since: expected a number greater than 0, at most 100, got "0"$/],
    [['--since', '-5'], /^--since: expected a number greater than 0, at most 100, got "-5"$/],
    [['--since', 'abc'], /^--since: expected/],
    [['--limit', '2.5'], /^--limit: expected an integer at least 1, at most 10, got "2.5"$/],
    [['--limit', '11'], /^--limit: expected an integer/],
    [['--process='], /^--process: must not be empty$/],
    [['--once=yes'], /^--once: takes no value$/],
    [['--limit', '1', '--limit', '2'], /^--limit: given more than once$/],
    [['stray'], /^unexpected argument "stray"$/],
  ];
  for (const [argv, message] of bad) {
    it(`rejects ${JSON.stringify(argv)} with one line`, () => {
      assert.throws(
        () => parseArgs(argv, specs),
        (err: unknown) => err instanceof UsageError && err.exitCode === 2 && message.test(err.message) && !err.message.includes('\n'),
      );
    });
  }

  it('maps a RequestQuery to /api/requests parameters', () => {
    const p = requestQueryParams({ process: 'node', since_minutes: 5, limit: 20_000, min_duration_ms: 1.5, correlation_id_regex: /^a.+/ });
    assert.equal(p.toString(), 'process=node&correlation_id_regex=%5Ea.%2B&min_duration_ms=1.5&since=5&limit=10000');
  });
});

/** Fixed records: two services, one 5xx, one request with two dependencies. */
function fixtures(now: number): RequestRecord[] {
  const out: RequestRecord[] = [];
  for (let i = 0; i < 10; i++) {
    out.push(
      sampleRecord({
        request_id: `r${i}`,
        timestamp: now - 60 + i,
        service_name: i < 6 ? 'checkout' : 'search',
        process_name: i < 6 ? 'node' : 'python3',
        pid: i < 6 ? 100 : 200,
        duration_ms: (i + 1) * 10,
        cpu_time_ms: (i + 1) * 0.5,
        bytes_received: 1000,
        bytes_sent: 100 * 1024,
        http_status: i === 3 ? 503 : 200,
        http_path: `/items/${i}`,
        correlation_id: `c-${i}`,
        dependencies:
          i === 2
            ? [
                { timestamp: now, peer_ip: '127.0.0.1', peer_port: 5000, new_connection: true, connect_ms: 0.25, duration_ms: 4, bytes_sent: 80, bytes_received: 2048, http_method: 'GET', http_path: '/dep-new', http_status: 200, caller_attribution: 'exact', span_id: '1'.repeat(16) },
                { timestamp: now, peer_ip: '127.0.0.1', peer_port: 5000, new_connection: false, connect_ms: null, duration_ms: 2, bytes_sent: 80, bytes_received: 512, http_method: 'GET', http_path: '/dep-pooled', http_status: 200, caller_attribution: 'exact', span_id: '2'.repeat(16) },
              ]
            : [],
      }),
    );
  }
  return out;
}

const EXPECTED_REPORT = [
  'SERVICE   COUNT  P50 MS  P95 MS  P99 MS  CPU P50  CPU P95  CPU P99        IN      OUT     ERRORS',
  'checkout      6    30.0    60.0    60.0     1.50     3.00     3.00  5.86 KiB  600 KiB  1 (16.7%)',
  'search        4    80.0   100.0   100.0     4.00     5.00     5.00  3.91 KiB  400 KiB     0 (0%)',
  '2 services, 10 requests in the last 60 min; durations and CPU in ms, errors are 5xx',
  '',
].join('\n');

describe('cli commands against the real API server and a real SQLite database', () => {
  const now = Date.now() / 1000;
  const records = fixtures(now);
  let server: ApiServer;
  let api: string;
  let dir: string;
  let db: string;

  before(async () => {
    const store = new RequestStore(100);
    for (const r of records) store.add(r);
    server = await startApiServer({ host: '127.0.0.1', port: 0, store, health: () => ({ ok: true, body: {} }), metrics: async () => ({ contentType: 'text/plain', body: '' }) });
    api = `http://127.0.0.1:${server.port}`;
    dir = mkdtempSync(join(tmpdir(), 'perfcatch-cli-'));
    db = join(dir, 'requests.db');
    const sqlite = SqliteStore.open({ path: db, retentionHours: 1e6, maxSizeMb: 100 });
    for (const r of records) sqlite.add(r);
    sqlite.close();
  });

  after(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const sources = () => [
    ['--api', api],
    ['--db', db],
  ];

  it('exports the command list and its usage lines', () => {
    assert.deepEqual(COMMANDS, ['requests', 'report', 'detail', 'services', 'alerts', 'top']);
    for (const c of COMMANDS) assert.match(COMMANDS_USAGE, new RegExp(`^  ${c} +\\S`, 'm'));
  });

  it('report prints the same exact table from the API and from the database', async () => {
    for (const src of sources()) {
      const r = await run('report', src);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out, EXPECTED_REPORT, `report ${src[0]}`);
    }
  });

  it('report --process and --json', async () => {
    const r = await run('report', ['--api', api, '--process', 'python3', '--json']);
    const body = JSON.parse(r.out);
    assert.equal(body.since_minutes, 60);
    assert.equal(body.process, 'python3');
    assert.deepEqual(body.services.map((s: { service_name: string; count: number }) => [s.service_name, s.count]), [['search', 4]]);
  });

  it('colour on a TTY, none with NO_COLOR or off a TTY', async () => {
    const tty = await run('report', ['--api', api], { tty: true });
    assert.match(tty.out, /\x1b\[31m1 \(16\.7%\)\x1b\[39m/);
    assert.equal(stripAnsi(tty.out), EXPECTED_REPORT);
    assert.equal((await run('report', ['--api', api], { tty: true, env: { NO_COLOR: '1' } })).out, EXPECTED_REPORT);
  });

  it('detail shows the request and its dependency tree, from both sources', async () => {
    for (const src of sources()) {
      const r = await run('detail', ['r2', ...src]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^GET \/items\/2  200\n/);
      assert.match(r.out, /service +checkout \(process node, pid 100\)/);
      assert.match(r.out, /correlation +c-2/);
      assert.match(r.out, /\n  ├─ GET \/dep-new → 127\.0\.0\.1:5000 200, 4\.00 ms, sent 80 B \/ received 2\.00 KiB, new connection \(connect 0\.25 ms\)\n/);
      assert.match(r.out, /\n  └─ GET \/dep-pooled → 127\.0\.0\.1:5000 200, 2\.00 ms, sent 80 B \/ received 512 B, pooled\n$/);
      const json = JSON.parse((await run('detail', ['r2', '--json', ...src])).out);
      assert.deepEqual(json, records[2]);
      assertOneLineError(await run('detail', ['nope', ...src]), 1, /no request with id "nope"/);
    }
  });

  it('requests: the filters reach both sources, newest first, limited', async () => {
    for (const src of sources()) {
      const one = await run('requests', ['--correlation-id', 'c-7', ...src]);
      assert.equal(one.code, 0, one.err);
      assert.match(one.out, /^TIME +SERVICE +REQUEST +STATUS +DUR MS +CPU MS +ID +POD +CORRELATION\n\S+Z +search +GET \/items\/7 +200 +80\.0 +4\.00 +r7 +- +c-7\n$/);
      const json = JSON.parse((await run('requests', ['--process', 'checkout', '--min-duration', '30', '--limit', '2', '--json', ...src])).out);
      assert.deepEqual(json.requests.map((r: RequestRecord) => r.request_id), ['r5', 'r4'], `${src[0]}`);
      const failed = JSON.parse((await run('requests', ['--status', '503', '--json', ...src])).out);
      assert.deepEqual(failed.requests.map((r: RequestRecord) => r.request_id), ['r3']);
      assert.equal((await run('requests', ['--path', '/nowhere', ...src])).out, 'no matching requests in the last 60 min\n');
    }
  });

  it('--cluster takes no --api or --db, and its companions need it', async () => {
    assertOneLineError(await run('requests', ['--cluster', '--api', api]), 2, /^perfcatch: --cluster and --api: give one, not both\n$/);
    assertOneLineError(await run('report', ['--agent-namespace', 'x']), 2, /^perfcatch: --agent-namespace: only with --cluster\n$/);
    assertOneLineError(await run('alerts', ['--cluster']), 2, /^perfcatch: unknown option --cluster/);
  });

  it('services lists count and last seen', async () => {
    const r = await run('services', ['--api', api, '--json']);
    assert.deepEqual(JSON.parse(r.out).services, [
      { service_name: 'checkout', process_names: ['node'], count: 6, last_seen: records[5]!.timestamp },
      { service_name: 'search', process_names: ['python3'], count: 4, last_seen: records[9]!.timestamp },
    ]);
    const table = (await run('services', ['--db', db])).out;
    assert.match(table, /^SERVICE +PROCESSES +COUNT +LAST SEEN +AGO\ncheckout +node +6 +\S+Z +\d+s\nsearch +python3 +4 /);
  });

  it('alerts: exit 1 above a threshold, 0 below, and the breaches are listed', async () => {
    for (const src of sources()) {
      const hit = await run('alerts', ['--threshold-duration', '85', ...src]);
      assert.equal(hit.code, 1, hit.err);
      assert.match(hit.out, /r8/);
      assert.match(hit.out, /r9/);
      assert.doesNotMatch(hit.out, /\br7\b/);
      assert.match(hit.out, /ALERT: 2 requests above threshold \(duration > 85 ms\)/);
      const cpu = JSON.parse((await run('alerts', ['--threshold-cpu', '4.5', '--threshold-duration', '1000', '--json', ...src])).out);
      assert.equal(cpu.breached, true);
      assert.deepEqual(cpu.requests.map((r: { request_id: string; exceeded: string[] }) => [r.request_id, r.exceeded]), [['r9', ['cpu_time_ms']]]);
      const ok = await run('alerts', ['--threshold-duration', '100000', '--threshold-cpu', '100000', ...src]);
      assert.equal(ok.code, 0);
      assert.match(ok.out, /^OK: no request above threshold/);
    }
  });

  it('top --once prints both tables; --json has both lists', async () => {
    const r = await run('top', ['--api', api, '--limit', '2']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /SLOWEST\nDUR MS +CPU MS +STATUS +SERVICE +REQUEST +AGO +ID\n +100\.0 +5\.00 +200 +search +GET \/items\/9 /);
    assert.match(r.out, /MOST CPU\nCPU MS +DUR MS/);
    const j = JSON.parse((await run('top', ['--db', db, '--json', '--limit', '3'])).out);
    assert.deepEqual(j.slowest.map((x: { request_id: string }) => x.request_id), ['r9', 'r8', 'r7']);
    assert.deepEqual(j.cpu.map((x: { request_id: string }) => x.request_id), ['r9', 'r8', 'r7']);
  });

  it('top on a TTY redraws until stopped', async () => {
    const stdout = new Capture(true);
    const controller = new AbortController();
    const done = runCommand('top', ['--api', api, '--interval', '0.1'], { stdout, stderr: new Capture(), env: {}, signal: controller.signal });
    await new Promise((r) => setTimeout(r, 350));
    controller.abort();
    assert.equal(await done, 0);
    const frames = stdout.text.split('\x1b[H\x1b[2J').filter(Boolean);
    assert.ok(frames.length >= 2, `redrew (${frames.length} frames)`);
  });

  it('user errors: one line on stderr, exit 2 for usage, 1 otherwise', async () => {
    assertOneLineError(await run('report', ['--since', 'x']), 2, /--since: expected/);
    assertOneLineError(await run('alerts', ['--api', api]), 2, /--threshold-duration MS, --threshold-cpu MS/);
    assertOneLineError(await run('detail', ['--api', api]), 2, /needs a request id/);
    assertOneLineError(await run('detail', ['a', 'b']), 2, /unexpected argument "b"/);
    assertOneLineError(await run('report', ['--api', api, '--db', db]), 2, /--api and --db/);
    assertOneLineError(await run('report', ['--api', 'ftp://x']), 2, /--api: expected an http/);
    assertOneLineError(await run('report', [], { env: { PERFCATCH_API: 'nope' } }), 2, /PERFCATCH_API: expected an http/);
    assertOneLineError(await run('nope', []), 2, /unknown command "nope"/);
    assertOneLineError(await run('report', ['--db', join(dir, 'missing.db')]), 1, /no database at .*missing\.db/);
    assertOneLineError(await run('report', ['--db', dir]), 1, /is a directory/);
    // A closed port: connection refused.
    const closed = await startApiServer({ host: '127.0.0.1', port: 0, store: new RequestStore(1), health: () => ({ ok: true, body: {} }), metrics: async () => ({ contentType: 'text/plain', body: '' }) });
    await closed.close();
    assertOneLineError(await run('services', ['--api', `http://127.0.0.1:${closed.port}`]), 1, /cannot reach the agent API at http:\/\/127\.0\.0\.1:\d+: connection refused/);
  });

  it('the environment picks the source; flags win', async () => {
    assert.equal((await run('report', [], { env: { PERFCATCH_DB_PATH: db } })).out, EXPECTED_REPORT);
    assert.equal((await run('report', [], { env: { PERFCATCH_API: api, PERFCATCH_DB_PATH: '/nonexistent' } })).out, EXPECTED_REPORT);
    assert.equal((await run('report', ['--api', api], { env: { PERFCATCH_DB_PATH: '/nonexistent' } })).out, EXPECTED_REPORT);
  });

  it('--help prints the usage and exits 0', async () => {
    for (const c of COMMANDS) {
      const r = await run(c, ['--help']);
      assert.equal(r.code, 0);
      assert.match(r.out, new RegExp(`^Usage: perfcatch ${c}`));
      assert.match(r.out, /--api URL/);
      assert.match(r.out, /--db FILE/);
    }
  });
});
