/**
 * src/decode/layout.ts must agree with bpf/perfcatch.h. The truth is read from the BTF of
 * the compiled object (build/perfcatch.bpf.o), so this fails when the header changes and
 * the TypeScript mirror does not.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CAPTURE_REQUEST_BYTES, DEFAULT_CAPTURE_RESPONSE_BYTES } from '../../src/config.ts';
import * as L from '../../src/decode/layout.ts';
import { LOADER_EXIT } from '../../src/loader/loader-process.ts';

const OBJECT = process.env.PERFCATCH_BPF_OBJECT ?? fileURLToPath(new URL('../../build/perfcatch.bpf.o', import.meta.url));

interface BtfType {
  kind: string;
  name: string;
  size?: number;
  members?: { name: string; bits_offset: number }[];
  values?: { name: string; val: number }[];
}

function btfTypes(): Map<string, BtfType> {
  assert.ok(existsSync(OBJECT), `${OBJECT} missing: run npm run build:bpf`);
  const json = execFileSync('bpftool', ['btf', 'dump', 'file', OBJECT, 'format', 'raw', '-j'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const types = (JSON.parse(json) as { types: BtfType[] }).types;
  return new Map(types.filter((t) => t.name?.startsWith('pc_') && t.kind !== 'VAR').map((t) => [t.name, t]));
}

const types = btfTypes();

function structLayout(name: string): Record<string, number> {
  const t = types.get(name);
  assert.ok(t && t.kind === 'STRUCT', `struct ${name} in BTF`);
  const out: Record<string, number> = { size: t.size ?? -1 };
  for (const m of t.members ?? []) out[m.name] = m.bits_offset / 8;
  return out;
}

function enumValues(name: string): Record<string, number> {
  const t = types.get(name);
  assert.ok(t && t.kind === 'ENUM', `enum ${name} in BTF`);
  return Object.fromEntries((t.values ?? []).map((v) => [v.name, v.val]));
}

describe('record layout mirrors bpf/perfcatch.h', () => {
  for (const [struct, mirror] of [
    ['pc_request', L.REQUEST],
    ['pc_dependency', L.DEPENDENCY],
    ['pc_data', L.DATA],
    ['pc_stats', L.STATS],
    ['pc_process_env', L.PROCESS_ENV],
    ['pc_process_cpu', L.PROCESS_CPU],
    ['pc_loader_info', L.LOADER_INFO],
    ['pc_ring_mark', L.RING_MARK],
    ['pc_filter_cfg', L.FILTER_CFG],
    ['pc_h2_run', L.H2_RUN],
    ['pc_h2_io', L.H2_IO],
  ] as const) {
    it(`struct ${struct}: size and every field offset`, () => {
      assert.deepEqual({ ...mirror }, structLayout(struct));
    });
  }

  it('enum pc_record_type', () => {
    assert.deepEqual(enumValues('pc_record_type'), {
      PC_REC_REQUEST: L.RecordType.REQUEST,
      PC_REC_DATA: L.RecordType.DATA,
      PC_REC_DEPENDENCY: L.RecordType.DEPENDENCY,
      PC_REC_PROCESS_ENV: L.RecordType.PROCESS_ENV,
      PC_REC_H2_IO: L.RecordType.H2_IO,
      PC_REC_H2_CONN: L.RecordType.H2_CONN,
      PC_REC_STATS: L.RecordType.STATS,
      PC_REC_PROCESS_CPU: L.RecordType.PROCESS_CPU,
      PC_REC_LOADER_INFO: L.RecordType.LOADER_INFO,
      PC_REC_RING_MARK: L.RecordType.RING_MARK,
    });
  });

  it('enum pc_request_flags', () => {
    const expected = Object.fromEntries(Object.entries(L.RequestFlags).map(([k, v]) => [`PC_F_${k}`, v]));
    assert.deepEqual(enumValues('pc_request_flags'), expected);
  });

  it('enum pc_dependency_flags', () => {
    const expected = Object.fromEntries(Object.entries(L.DependencyFlags).map(([k, v]) => [`PC_DF_${k}`, v]));
    assert.deepEqual(enumValues('pc_dependency_flags'), expected);
  });

  it('enum pc_env_key', () => {
    assert.deepEqual(enumValues('pc_env_key'), {
      PC_ENV_SERVICE_NAME: L.EnvKey.SERVICE_NAME,
      PC_ENV_RESOURCE_ATTRIBUTES: L.EnvKey.RESOURCE_ATTRIBUTES,
    });
  });

  it('enum pc_direction', () => {
    assert.deepEqual(enumValues('pc_direction'), { PC_DIR_REQUEST: L.Direction.REQUEST, PC_DIR_RESPONSE: L.Direction.RESPONSE });
  });

  it('enum pc_counter names and order', () => {
    const expected: Record<string, number> = Object.fromEntries(L.KERNEL_COUNTERS.map((n, i) => [`PC_CNT_${n.toUpperCase()}`, i]));
    expected.PC_CNT_MAX = L.PC_CNT_MAX;
    assert.deepEqual(enumValues('pc_counter'), expected);
  });

  it('enum pc_loader_counter names and order', () => {
    const expected: Record<string, number> = Object.fromEntries(L.LOADER_COUNTERS.map((n, i) => [`PC_LCNT_${n.toUpperCase()}`, i]));
    expected.PC_LCNT_MAX = L.PC_LCNT_MAX;
    assert.deepEqual(enumValues('pc_loader_counter'), expected);
  });

  it('payload constants', () => {
    assert.equal(L.DATA.data, L.PC_DATA_HDR_SIZE);
    assert.equal(L.DATA.size, L.PC_DATA_HDR_SIZE + L.PC_DATA_MAX);
  });

  it('enum pc_data_size', () => {
    assert.deepEqual(enumValues('pc_data_size'), { PC_DATA_MAX: L.PC_DATA_MAX, PC_DATA_HDR_SIZE: L.PC_DATA_HDR_SIZE });
  });

  it('enum pc_h2_limits and pc_h2_flags', () => {
    assert.deepEqual(enumValues('pc_h2_limits'), {
      PC_H2_RUNS_MAX: L.PC_H2_RUNS_MAX,
      PC_H2_DATA_MAX: L.PC_H2_DATA_MAX,
      PC_H2_HDR_SIZE: L.PC_H2_HDR_SIZE,
      PC_H2_PAYLOAD_MAX: L.PC_H2_PAYLOAD_MAX,
      PC_H2_STEPS: L.PC_H2_STEPS,
    });
    const flags = Object.fromEntries(Object.entries(L.H2Flags).map(([k, v]) => [`PC_H2F_${k}`, v]));
    assert.deepEqual(enumValues('pc_h2_flags'), flags);
    assert.equal(L.H2_IO.data, L.PC_H2_HDR_SIZE);
  });

  it('enum pc_abi: the version the agent requires of the loader', () => {
    assert.deepEqual(enumValues('pc_abi'), { PC_ABI_VERSION: L.PC_ABI_VERSION });
  });
});

describe('constants the agent shares with bpf/perfcatch.h', () => {
  it('enum pc_loader_exit: the loader exit codes the agent tells apart', () => {
    const expected = Object.fromEntries(Object.entries(LOADER_EXIT).map(([k, v]) => [`PC_EXIT_${k}`, v]));
    assert.deepEqual(enumValues('pc_loader_exit'), expected);
  });

  it('enum pc_capture_default: the --capture-*-bytes defaults', () => {
    assert.deepEqual(enumValues('pc_capture_default'), {
      PC_CAPTURE_REQ_DEFAULT: DEFAULT_CAPTURE_REQUEST_BYTES,
      PC_CAPTURE_RESP_DEFAULT: DEFAULT_CAPTURE_RESPONSE_BYTES,
    });
  });
});
