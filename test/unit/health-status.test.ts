/** Issue 13, finding 6: /health's status and its degraded reasons. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { degradedReasons, healthStatus, type HealthInputs } from '../../src/api/health-status.ts';

const NOW = 1_800_000_000_000;
const fine: HealthInputs = {
  captureUp: true,
  nowMs: NOW,
  storage: { ok: true, lastError: null },
  exportFailingSinceMs: null,
  lastLoaderRestartMs: null,
  loaderRestarts: 0,
  connTableFull: { lost: 0, lastLossMs: null, size: 65536 },
  podFilter: { connected: true, synced: true, lastError: null },
};

describe('health status', () => {
  it('ok when everything works; capture_down wins over degraded', () => {
    assert.deepEqual(degradedReasons(fine), []);
    assert.equal(healthStatus(true, []), 'ok');
    assert.equal(healthStatus(false, ['x']), 'capture_down');
    assert.equal(healthStatus(true, ['x']), 'degraded');
  });

  it('names each cause', () => {
    const reasons = degradedReasons({
      ...fine,
      storage: { ok: false, lastError: 'write of 5 records: database or disk is full' },
      exportFailingSinceMs: NOW - 61_000,
      lastLoaderRestartMs: NOW - 10_000,
      loaderRestarts: 3,
      connTableFull: { lost: 12, lastLossMs: NOW - 20_000, size: 64 },
      podFilter: { connected: false, synced: false, lastError: 'connect ECONNREFUSED' },
    });
    assert.equal(reasons.length, 5);
    assert.match(reasons[0]!, /^storage failing \(write of 5 records: database or disk is full\)/);
    assert.match(reasons[1]!, /^span export failing for 61 s/);
    assert.match(reasons[2]!, /^loader restarted \(3 in all, the last 10 s ago\)/);
    assert.match(reasons[3]!, /^connection table full \(64 connections, --conn-table-size\): 12 records lost in all, the last 20 s ago/);
    assert.match(reasons[4]!, /Kubernetes API unreachable \(connect ECONNREFUSED\).*stays closed/);
  });

  it('a short export failure, an old restart, old table-full losses and no pod filter do not degrade', () => {
    assert.deepEqual(
      degradedReasons({
        ...fine,
        exportFailingSinceMs: NOW - 30_000,
        lastLoaderRestartMs: NOW - 600_000,
        loaderRestarts: 1,
        connTableFull: { lost: 3, lastLossMs: NOW - 301_000, size: 65536 },
        podFilter: null,
      }),
      [],
    );
  });
});
