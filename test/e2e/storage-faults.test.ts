/**
 * Issue 13, findings 3 and 6, with the real agent: a large database queried over a week,
 * a disk that fills up and one that turns read-only. The agent stays up with bounded
 * memory, the API answers, requests keep being recorded, and /health says what is wrong.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { writeBigDatabase } from '../harness/big-db.ts';
import { waitFor } from '../harness/ports.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { startNodeServer, type RunningServer } from '../harness/runtimes.ts';
import type { RequestRecord } from '../../src/types.ts';

type Requests = { count: number; requests: RequestRecord[] };
interface Health {
  status: string;
  degraded?: string[];
  storage: { ok: boolean; rows: number; writeErrors: number };
}

/** The chart's memory limit for the agent (charts/perfcatch/values.yaml). */
const CHART_MEMORY_LIMIT_BYTES = 512 * 1024 * 1024;
const BIG_ROWS = 150_000;

function statusKb(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

async function drive(port: number, prefix: string, n: number): Promise<void> {
  const client = new RawHttpClient(port);
  for (let i = 0; i < n; i++) await client.request(getRequest(`/${prefix}/${i}`, { 'X-Correlation-ID': `${prefix}-${i}` }));
  await client.close();
}

async function timed<T>(f: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await f();
  return { value, ms: performance.now() - start };
}

describe(`a ${BIG_ROWS}-row database queried over a week`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'perfcatch-bigdb-'));
  const db = join(dir, 'requests.db');
  let server: RunningServer;
  let agent: RunningAgent;

  before(async () => {
    writeBigDatabase(db, BIG_ROWS, 7 * 86_400);
    server = await startNodeServer({ OTEL_SERVICE_NAME: 'bigdb-node' });
    agent = await startAgent(['--ports', String(server.port), '--db', db]);
  });
  after(async () => {
    await agent?.stop();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('week-long summaries and scans answer while 300 requests are recorded exactly; memory stays under the chart limit; /health is cheap', async () => {
    const sizeMb = statSync(db).size / 1e6;
    const load = drive(server.port, 'bigdb', 300);
    const queries = await Promise.all([
      timed(() => agent.get<{ count: number; services: { count: number }[] }>('/api/services?since=10080')),
      timed(() => agent.get<Requests>('/api/requests?since=10080&path=/nope&limit=10000')),
      timed(() => agent.get<Requests>(`/api/requests?since=10080&limit=10000&correlation_id_regex=${encodeURIComponent('^([0-9a-z-]+)+!$')}`)),
    ]);
    const health = await timed(() => agent.get<Health>('/health'));
    await load;
    const [services, scan, regex] = queries;
    console.log(
      `# ${sizeMb.toFixed(0)} MB, ${BIG_ROWS} rows over a week: services ${services.value.status} in ${services.ms.toFixed(0)} ms, ` +
        `unindexed scan ${scan.value.status} in ${scan.ms.toFixed(0)} ms, catastrophic regex ${regex.value.status} in ${regex.ms.toFixed(0)} ms, ` +
        `/health in ${health.ms.toFixed(0)} ms; agent peak RSS ${(statusKb(agent.pid, 'VmHWM') / 1024).toFixed(0)} MB`,
    );
    assert.equal(services.value.status, 200);
    assert.ok(services.value.body.services.reduce((n, s) => n + s.count, 0) >= BIG_ROWS);
    for (const q of [scan, regex]) assert.ok([200, 422].includes(q.value.status), `status ${q.value.status}`);
    assert.equal(scan.value.status === 200 ? scan.value.body.count : 0, 0);
    assert.ok(health.ms < 200, `/health took ${health.ms.toFixed(0)} ms`);
    assert.ok(health.value.body.storage.rows >= BIG_ROWS);

    const recorded = await waitFor('300 requests recorded', async () => {
      const r = await agent.get<Requests>(`/api/requests?limit=1000&correlation_id_regex=${encodeURIComponent('^bigdb-')}`);
      return r.body.count >= 300 ? r.body.requests : undefined;
    });
    assert.equal(recorded.length, 300);
    for (const r of recorded) assert.equal(r.http_path, `/bigdb/${r.correlation_id!.slice('bigdb-'.length)}`);
    assert.ok(statusKb(agent.pid, 'VmHWM') * 1024 < CHART_MEMORY_LIMIT_BYTES);
  });
});

/** Mounts a small tmpfs (root only); returns its directory. */
function mountTmpfs(size: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'perfcatch-mnt-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir]);
  return dir;
}

/**
 * An 8 MB ext4 loop mount with errors=remount-ro, and how to fail it: Linux refuses
 * `remount,ro` while a file is open for writing, so this does what a failing disk does.
 */
function mountFailingExt4(): { dir: string; fail: () => void } {
  const imageDir = mkdtempSync(join(tmpdir(), 'perfcatch-img-'));
  const image = join(imageDir, 'ext4.img');
  execFileSync('truncate', ['-s', '8M', image]);
  execFileSync('mkfs.ext4', ['-q', '-F', image]);
  const dir = mkdtempSync(join(tmpdir(), 'perfcatch-mnt-'));
  execFileSync('mount', ['-o', 'loop,errors=remount-ro', image, dir]);
  // The loop device holds the image open: unlinking it now frees it once unmounted.
  rmSync(imageDir, { recursive: true, force: true });
  const device = execFileSync('findmnt', ['-n', '-o', 'SOURCE', dir], { encoding: 'utf8' }).trim().split('/').pop()!;
  return { dir, fail: () => execFileSync('sh', ['-c', `echo 1 > /sys/fs/ext4/${device}/trigger_fs_error`]) };
}

function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'ignore' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
  }
  rmSync(dir, { recursive: true, force: true });
}

for (const fault of ['full', 'read-only'] as const) {
  describe(`a ${fault} disk under --db`, () => {
    let mnt: string;
    let failDisk = () => {};
    let server: RunningServer;
    let agent: RunningAgent;

    before(async () => {
      if (fault === 'full') mnt = mountTmpfs('400k');
      else ({ dir: mnt, fail: failDisk } = mountFailingExt4());
      server = await startNodeServer({ OTEL_SERVICE_NAME: `disk-${fault}` });
      agent = await startAgent(['--ports', String(server.port), '--db', join(mnt, 'requests.db')]);
    });
    after(async () => {
      await agent?.stop();
      await server?.stop();
      if (mnt) unmount(mnt);
    });

    it(`600 requests: the API serves all 600 from the ring buffer, /health is degraded with the storage reason`, async () => {
      await drive(server.port, 'a', 100);
      await waitFor('first 100 in the database', async () => ((await agent.get<Health>('/health')).body.storage.rows >= 100 ? true : undefined));
      if (fault === 'read-only') failDisk();
      await drive(server.port, 'b', 500);
      const health = await waitFor('storage failing', async () => {
        const h = (await agent.get<Health>('/health')).body;
        return h.storage.writeErrors > 0 ? h : undefined;
      });
      assert.equal(health.status, 'degraded');
      assert.ok(health.degraded?.some((r) => r.startsWith('storage failing')), JSON.stringify(health.degraded));
      const all = await waitFor('600 requests visible', async () => {
        const r = await agent.get<Requests>(`/api/requests?limit=1000&process=disk-${fault}`);
        return r.body.count >= 600 ? r.body : undefined;
      });
      assert.equal(all.count, 600);
      console.log(`# ${fault} disk: ${health.storage.rows} rows written, ${health.storage.writeErrors} failed writes; API shows ${all.count} of 600`);
      // Capture went on throughout: the agent is up and capture is not down.
      assert.equal((await agent.get<Health>('/health')).status, 200);
    });
  });
}
