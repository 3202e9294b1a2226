/**
 * Issue 12 with gRPC peers other than Node's: a grpc-go server and a grpcio (Python) server,
 * both driven by a grpc-go client (test/servers/grpc-go), one connection each through a relay
 * that keeps the wire (test/harness/h2-wire.ts: a stream's frames up to the server's end of it). Truth: each server's and the client's own
 * account of every call (id, status; grpc-go's stats handler also counts the request's header
 * block and messages on the wire), and each stream's frame bytes on the wire.
 *
 * Then bad input on the grpc-go server: a connection joined mid-way, a HEADERS block larger
 * than the kernel captures (4096 bytes of payload), and malformed frames: counted, the agent
 * keeps running, nothing wrong reported.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RequestRecord } from '../../src/types.ts';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { readJsonLines, runGoStream, runGoUnary, startGrpcGoServer, startGrpcioServer, type ClientCall, type GrpcServer, type ServerCall } from '../harness/grpc-peers.ts';
import { assertStreamBytes, startRecordingRelay } from '../harness/h2-wire.ts';
import { waitFor } from '../harness/ports.ts';
import { sendRaw } from '../harness/raw-client.ts';
import { h2Frame } from '../http2/frame-bytes.ts';

const CALLS = Number(process.env.PERFCATCH_GRPC_CALLS ?? 10_000);
const CONCURRENCY = 100;
const OUTCOMES = [0, 5, 13]; // OK, NOT_FOUND, INTERNAL: the payload's first byte picks (i % 3)
const MB = 1 << 20;

interface H2Counters {
  hpackDesyncs: number;
  frameDesyncs: number;
  truncatedHeaderBlocks: number;
  cpuUnattributedNs: number;
}

async function h2Counters(agent: RunningAgent): Promise<H2Counters> {
  const health = await agent.get<{ counters: { h2: H2Counters }; lost: Record<string, number> }>('/health');
  assert.equal(health.status, 200, 'the agent is up');
  return health.body.counters.h2;
}

async function records(agent: RunningAgent, query: string, want: number): Promise<RequestRecord[]> {
  const fetch = async () => (await agent.get<{ requests?: RequestRecord[] }>(`/api/requests?limit=10000&${query}`)).body.requests;
  const got = await waitFor(`${want} records for ${query}`, async () => {
    const r = await fetch();
    return r && r.length >= want ? r : undefined;
  }, 120_000, 500);
  // Anything more would come with the same batch: one more look after the drain period.
  await new Promise((r) => setTimeout(r, 1000));
  const again = (await fetch()) ?? [];
  return again.length > got.length ? again : got;
}

/** utime + stime of a process, ms. */
function processCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

describe('gRPC peers: grpc-go and grpcio servers, a grpc-go client', () => {
  const dir = mkdtempSync(join(tmpdir(), 'perfcatch-grpc-peers-'));
  const servers: GrpcServer[] = [];
  let agent: RunningAgent;

  before(async () => {
    servers.push(await startGrpcGoServer(join(dir, 'grpc-go.jsonl')));
    servers.push(await startGrpcioServer(join(dir, 'grpcio.jsonl')));
    agent = await startAgent(['--ports', servers.map((s) => s.port).join(',')]);
  });
  after(async () => {
    await agent?.stop();
    for (const s of servers) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const name of ['grpc-go', 'grpcio']) {
    it(`${name}: ${CALLS} unary calls, ${CONCURRENCY} concurrent on one connection, OK / NOT_FOUND / INTERNAL: exact records, statuses and per-stream bytes`, async () => {
      const server = servers.find((s) => s.name === name)!;
      const prefix = `${name}-u-`;
      const relay = await startRecordingRelay(server.port);
      const clientTruth = join(dir, `${name}-client.jsonl`);
      const cpuBefore = processCpuMs(server.pid);
      const unattributedBefore = (await h2Counters(agent)).cpuUnattributedNs;
      const started = Date.now();
      await runGoUnary(relay.port, CALLS, CONCURRENCY, prefix, clientTruth);
      const ms = Date.now() - started;
      await new Promise((r) => setTimeout(r, 300));
      relay.close();

      // The peers' own accounts agree with each other.
      const client = new Map(readJsonLines<ClientCall>(clientTruth).map((c) => [c.id, c]));
      const served = new Map(readJsonLines<ServerCall>(join(dir, `${name}.jsonl`)).filter((c) => c.id?.startsWith(prefix)).map((c) => [c.id, c]));
      assert.equal(client.size, CALLS);
      assert.equal(served.size, CALLS);
      for (const [id, c] of client) assert.equal(served.get(id)?.code, c.code, `${id}: server and client agree`);
      const byCode = (code: number) => [...client.values()].filter((c) => c.code === code).length;
      for (const [k, code] of OUTCOMES.entries()) assert.equal(byCode(code), Math.ceil((CALLS - k) / 3), `calls with status ${code}`);

      const got = await records(agent, `protocol=h2&correlation_id_regex=${encodeURIComponent(`^${prefix}`)}`, CALLS);
      assert.equal(got.length, CALLS, 'one record per call');
      const seen = new Set<string>();
      let headerChecked = 0;
      for (const r of got) {
        const truth = served.get(r.correlation_id!);
        assert.ok(truth, `unexpected record ${r.correlation_id}`);
        assert.ok(!seen.has(r.correlation_id!), `two records for ${r.correlation_id}`);
        seen.add(r.correlation_id!);
        assert.equal(r.grpc_status, truth.code, `${r.correlation_id} grpc_status`);
        assert.equal(r.http_method, 'POST');
        assert.equal(r.http_path, '/perfcatch.test.Echo/Call');
        assert.equal(r.http_status, 200);
        assert.equal(r.local_port, server.port);
        if (truth.in_header_wire !== undefined) {
          // grpc-go's own count: the HEADERS frame (9 + its block) and one DATA frame (9 + the message with its prefix).
          assert.equal(r.bytes_received, 9 + truth.in_header_wire + 9 + truth.in_payload_wire!, `${r.correlation_id} request bytes against grpc-go's stats`);
          headerChecked++;
        }
      }
      // Every stream's bytes against the wire, as a multiset (the wire does not say which call a stream was).
      assert.equal(relay.wires.length, 1, 'one connection');
      const crossed = assertStreamBytes(got, relay.wires);
      for (const code of OUTCOMES) {
        const filtered = await waitFor(`grpc_status=${code} query`, async () => {
          const r = await agent.get<{ requests: RequestRecord[] }>(`/api/requests?limit=10000&grpc_status=${code}&correlation_id_regex=${encodeURIComponent(`^${prefix}`)}`);
          return r.status === 200 ? r : undefined;
        }, 30_000, 1_000);
        assert.equal(filtered.body.requests.length, byCode(code), `grpc_status=${code} filter`);
      }

      // CPU: what the records carry can be no more than the server process used.
      const cpuMs = processCpuMs(server.pid) - cpuBefore;
      const recordsCpu = got.reduce((s, r) => s + r.cpu_time_ms, 0);
      const unattributedMs = ((await h2Counters(agent)).cpuUnattributedNs - unattributedBefore) / 1e6;
      assert.ok(recordsCpu <= cpuMs + 20, `records' CPU ${recordsCpu.toFixed(1)} ms within the server's ${cpuMs} ms (10 ms ticks)`);
      const count = (a: string) => got.filter((r) => r.cpu_attribution === a).length;
      console.log(
        `# ${name}: ${CALLS} calls in ${ms} ms; server CPU ${cpuMs} ms (/proc), records ${recordsCpu.toFixed(1)} ms + unattributed ${unattributedMs.toFixed(1)} ms (all h2 ports); ` +
          `attribution ${count('exact')} exact, ${count('apportioned')} apportioned, ${count('unknown')} unknown; ${headerChecked} request byte counts checked against the server's stats; ` +
          `${crossed} stream(s) whose trailing client WINDOW_UPDATEs the server read after its end`,
      );
    });

    it(`${name}: server streaming, 3 concurrent calls of four 1 MB messages: exact bytes per stream`, async () => {
      const server = servers.find((s) => s.name === name)!;
      const prefix = `${name}-s-`;
      const relay = await startRecordingRelay(server.port);
      const clientTruth = join(dir, `${name}-stream-client.jsonl`);
      await runGoStream(relay.port, 3, 4, MB, prefix, clientTruth);
      await new Promise((r) => setTimeout(r, 300));
      relay.close();
      const client = readJsonLines<ClientCall>(clientTruth);
      assert.deepEqual(client.map((c) => [c.code, c.messages, c.bytes]), [0, 1, 2].map(() => [0, 4, 4 * MB]), 'the client got every message');
      const served = new Map(readJsonLines<ServerCall>(join(dir, `${name}.jsonl`)).filter((c) => c.id?.startsWith(prefix)).map((c) => [c.id, c]));
      const got = await records(agent, `correlation_id_regex=${encodeURIComponent(`^${prefix}`)}`, 3);
      assert.equal(got.length, 3);
      const crossed = assertStreamBytes(got, relay.wires);
      for (const r of got) {
        assert.equal(r.grpc_status, 0);
        assert.equal(r.http_path, '/perfcatch.test.Echo/Stream');
        const truth = served.get(r.correlation_id!);
        assert.equal(truth?.code, 0);
        // grpc-go counted its messages' wire bytes: the record has them and their frames' headers on top.
        if (truth?.out_payload_wire !== undefined) assert.ok(r.bytes_sent > truth.out_payload_wire && truth.out_payload_wire >= 4 * MB, `${r.bytes_sent} > ${truth.out_payload_wire}`);
        else assert.ok(r.bytes_sent > 4 * MB);
      }
      console.log(`# ${name} server streaming: ${got.map((r) => `${r.bytes_received}/${r.bytes_sent}`).join(', ')} (request/response bytes per stream; ${crossed} whose trailing client WINDOW_UPDATEs the server read after its end)`);
    });
  }
});

/** One unary call by hand over Node's HTTP/2 client: BytesValue{value: [kind, 'A']}. */
async function grpcCall(session: http2.ClientHttp2Session, id: string, kind: number, extra: Record<string, string> = {}): Promise<{ status: number; grpcStatus: number }> {
  const req = session.request({ ':method': 'POST', ':path': '/perfcatch.test.Echo/Call', 'content-type': 'application/grpc', te: 'trailers', 'x-correlation-id': id, ...extra });
  const message = Buffer.from([0x0a, 2, kind, 0x41]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  req.end(Buffer.concat([prefix, message]));
  return new Promise((resolve, reject) => {
    let status = 0;
    let grpcStatus = -1;
    req.on('response', (h) => {
      status = Number(h[':status']);
      if (h['grpc-status'] !== undefined) grpcStatus = Number(h['grpc-status']);
    });
    req.on('trailers', (t) => (grpcStatus = Number(t['grpc-status'])));
    req.on('data', () => {});
    req.on('end', () => resolve({ status, grpcStatus }));
    req.on('error', reject);
  });
}

interface Expected {
  id: string;
  grpcStatus: number;
}

/**
 * The records of one connection in call order (the calls were sequential): each field either
 * what was sent or null, never anything else; returns how many had nothing decoded.
 */
function assertNullOrExact(got: RequestRecord[], expected: Expected[], what: string): number {
  assert.equal(got.length, expected.length, `${what}: every stream is a record`);
  const sorted = [...got].sort((a, b) => a.timestamp - b.timestamp);
  let undecoded = 0;
  sorted.forEach((r, i) => {
    const e = expected[i]!;
    assert.ok(r.bytes_received > 0 && r.bytes_sent > 0, `${what} ${e.id}: bytes counted`);
    if (r.http_method !== null) assert.equal(r.http_method, 'POST', `${what} ${e.id}`);
    if (r.http_path !== null) assert.equal(r.http_path, '/perfcatch.test.Echo/Call', `${what} ${e.id}`);
    if (r.http_status !== null) assert.equal(r.http_status, 200, `${what} ${e.id}`);
    if (r.correlation_id !== null) assert.equal(r.correlation_id, e.id, `${what} ${e.id}`);
    if (r.grpc_status !== null) assert.equal(r.grpc_status, e.grpcStatus, `${what} ${e.id}`);
    if (r.http_method === null && r.http_path === null && r.http_status === null && r.correlation_id === null) undecoded++;
  });
  return undecoded;
}

describe('gRPC (grpc-go server), bad input: joined mid-way, a header block past the capture, malformed frames', () => {
  const dir = mkdtempSync(join(tmpdir(), 'perfcatch-grpc-bad-'));
  let server: GrpcServer;
  let agent: RunningAgent | undefined;

  before(async () => {
    server = await startGrpcGoServer(join(dir, 'truth.jsonl'));
  });
  after(async () => {
    await agent?.stop();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('every stream counted with its bytes; after an HPACK desync nothing is decoded, and it is counted once per connection', async () => {
    const byPort = async (port: number, want: number) =>
      (await records(agent!, 'protocol=h2', want)).filter((r) => r.remote_port === port);

    // 1. Joined mid-way: five calls before the agent starts, twenty after.
    const early = http2.connect(`http://127.0.0.1:${server.port}`);
    for (let i = 0; i < 5; i++) assert.equal((await grpcCall(early, `early-${i}`, 0)).grpcStatus, 0);
    agent = await startAgent(['--ports', String(server.port)]);
    const base = await h2Counters(agent);
    const mid: Expected[] = [];
    for (let i = 0; i < 20; i++) mid.push({ id: `mid-${i}`, grpcStatus: (await grpcCall(early, `mid-${i}`, i % 3)).grpcStatus });
    const midPort = early.socket.localPort!;
    early.close();
    const midRecords = await waitFor('the mid-way records', async () => {
      const r = await byPort(midPort, 20);
      return r.length >= 20 ? r : undefined;
    }, 60_000, 500);
    const midUndecoded = assertNullOrExact(midRecords, mid, 'mid-way');
    const afterMid = await h2Counters(agent);
    // Node's client indexes its headers (:authority, content-type, te...): the first request
    // seen refers to the table the agent never saw, so decoding stops at once.
    assert.equal(afterMid.hpackDesyncs - base.hpackDesyncs, 1, 'one HPACK desync for the joined connection');
    assert.equal(midUndecoded, 20, 'nothing decoded from a table that may be out of sync');

    // 2. A HEADERS block larger than the kernel's 4096-byte capture (a random, so
    //    incompressible, 8,000-character metadata value), between exact calls.
    const big = http2.connect(`http://127.0.0.1:${server.port}`);
    const calls: Expected[] = [];
    for (let i = 0; i < 5; i++) calls.push({ id: `pre-${i}`, grpcStatus: (await grpcCall(big, `pre-${i}`, i % 3)).grpcStatus });
    const value = randomBytes(6000).toString('base64');
    calls.push({ id: 'big', grpcStatus: (await grpcCall(big, 'big', 0, { 'x-big': value })).grpcStatus });
    for (let i = 0; i < 20; i++) calls.push({ id: `post-${i}`, grpcStatus: (await grpcCall(big, `post-${i}`, i % 3)).grpcStatus });
    const bigPort = big.socket.localPort!;
    big.close();
    assert.deepEqual(calls.map((c) => c.grpcStatus), calls.map((c) => (c.id === 'big' ? 0 : OUTCOMES[Number(c.id.split('-')[1]) % 3])), 'the server answered every call');
    const bigRecords = await waitFor('the large-header records', async () => {
      const r = await byPort(bigPort, 26);
      return r.length >= 26 ? r : undefined;
    }, 60_000, 500);
    const bigUndecoded = assertNullOrExact(bigRecords, calls, 'large header');
    const sorted = [...bigRecords].sort((a, b) => a.timestamp - b.timestamp);
    for (const r of sorted.slice(0, 5)) assert.ok(r.correlation_id !== null && r.http_status === 200, 'the calls before it are exact');
    const afterBig = await h2Counters(agent);
    assert.ok(afterBig.truncatedHeaderBlocks - afterMid.truncatedHeaderBlocks >= 1, 'the cut block is counted');
    assert.equal(afterBig.hpackDesyncs - afterMid.hpackDesyncs, bigUndecoded > 0 ? 1 : 0, 'a desync, counted once, exactly when decoding stopped');

    // 3. Malformed: HEADERS on stream 0 (frames), an HPACK index beyond every table.
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
    const settings = h2Frame(4, 0, 0, Buffer.alloc(0));
    await sendRaw(server.port, Buffer.concat([preface, settings, h2Frame(1, 4, 0, Buffer.from([0x82]))]));
    await sendRaw(server.port, Buffer.concat([preface, settings, h2Frame(1, 5, 1, Buffer.from([0xff, 0xff, 0xff, 0x7f]))]));

    // 4. A fresh connection afterwards is exact.
    const fresh = http2.connect(`http://127.0.0.1:${server.port}`);
    const freshCalls: Expected[] = [];
    for (let i = 0; i < 10; i++) freshCalls.push({ id: `fresh-${i}`, grpcStatus: (await grpcCall(fresh, `fresh-${i}`, i % 3)).grpcStatus });
    fresh.close();
    const exact = await records(agent, `correlation_id_regex=${encodeURIComponent('^fresh-')}`, 10);
    assert.equal(exact.length, 10);
    for (const r of exact) {
      const e = freshCalls.find((c) => c.id === r.correlation_id)!;
      assert.deepEqual([r.http_method, r.http_path, r.http_status, r.grpc_status], ['POST', '/perfcatch.test.Echo/Call', 200, e.grpcStatus]);
    }
    const end = await h2Counters(agent);
    assert.ok(end.frameDesyncs - afterBig.frameDesyncs >= 1, 'the frame desync is counted');
    assert.ok(end.hpackDesyncs - afterBig.hpackDesyncs >= 1, 'the bad index is counted');
    // /metrics says what /health says (one loss-stage table).
    const metrics = await agent.metrics();
    const stage = (name: string) => Number(new RegExp(`^perfcatch_records_lost_total\\{[^}]*stage="${name}"[^}]*\\} (\\d+)`, 'm').exec(metrics)?.[1]);
    assert.equal(stage('agent_h2_hpack_desync'), end.hpackDesyncs, '/metrics agent_h2_hpack_desync');
    assert.equal(stage('agent_h2_truncated_header_blocks'), end.truncatedHeaderBlocks, '/metrics agent_h2_truncated_header_blocks');
    assert.equal(stage('agent_h2_frame_desync'), end.frameDesyncs, '/metrics agent_h2_frame_desync');
    const all = (await agent.get<{ requests: RequestRecord[] }>('/api/requests?limit=10000&protocol=h2')).body.requests;
    const malformed = all.filter((r) => ![midPort, bigPort].includes(r.remote_port) && !/^fresh-/.test(r.correlation_id ?? ''));
    for (const r of malformed) assert.deepEqual([r.http_method, r.http_path, r.http_status, r.correlation_id], [null, null, null, null], 'nothing guessed');
    console.log(
      `# bad input: mid-way ${midRecords.length} records, ${midUndecoded} undecoded; large header ${bigRecords.length} records, ${bigUndecoded} undecoded ` +
        `(the ${6000 * 4 / 3}-character value, block cut at 4096); malformed ${malformed.length} records; h2 counters ${JSON.stringify(end)}`,
    );
  });
});
