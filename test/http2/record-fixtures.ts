/**
 * Records the HTTP/2 byte vectors under test/fixtures/http2/: real peers (Node's http2, and
 * @grpc/grpc-js; curl for Upgrade: h2c) talk through a TCP tap on localhost that keeps both
 * directions' bytes with their read boundaries and times. Each fixture also holds what the
 * peers themselves reported per stream (method, path, status, body sizes, resets, gRPC status),
 * which the unit tests hold the decoder to.
 *
 *   node test/http2/record-fixtures.ts            # all scenarios
 *   node test/http2/record-fixtures.ts grpc basic # some
 */
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import http2 from 'node:http2';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Http2Fixture, PeerStream, RecordedChunk } from './fixture.ts';
import { h2Frame } from './frame-bytes.ts';

const OUT = new URL('../fixtures/http2/', import.meta.url);

/** A tap in front of `targetPort`: the bytes of its first connection, both ways, in order. */
async function startTap(targetPort: number): Promise<{ port: number; chunks: RecordedChunk[]; closed: Promise<void>; close(): void }> {
  const chunks: RecordedChunk[] = [];
  const t0 = process.hrtime.bigint();
  const at = () => Number((process.hrtime.bigint() - t0) / 1000n);
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  const sockets: Socket[] = [];
  let taken = false;
  const server: Server = createServer((client) => {
    if (taken) throw new Error('a scenario must use one connection');
    taken = true;
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.push(client, upstream);
    client.on('data', (b: Buffer) => {
      chunks.push({ from: 'client', t: at(), base64: b.toString('base64') });
      upstream.write(b);
    });
    upstream.on('data', (b: Buffer) => {
      chunks.push({ from: 'server', t: at(), base64: b.toString('base64') });
      client.write(b);
    });
    let ends = 0;
    const ended = () => {
      if (++ends === 2) resolveClosed();
    };
    client.on('close', () => {
      upstream.end();
      ended();
    });
    upstream.on('close', () => {
      client.end();
      ended();
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    chunks,
    closed,
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const listen = async (s: http2.Http2Server | Server): Promise<number> => {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return (s.address() as AddressInfo).port;
};

/** What the server saw of each stream, by stream id. */
type ServerView = Map<number, { method: string; path: string; authority: string; requestBodyBytes: number; headers: Record<string, string> }>;

/** A Node http2 server: /status/N answers N; ?size=N answers N body bytes; ?delay=N waits; /reset resets. */
function nodeServer(view: ServerView, settings?: http2.Settings): http2.Http2Server {
  const server = http2.createServer({ settings: settings ?? {}, maxSessionMemory: 100 });
  server.on('stream', (stream, headers) => {
    const url = new URL(String(headers[':path']), 'http://x');
    let body = 0;
    const picked: Record<string, string> = {};
    for (const name of ['traceparent', 'x-correlation-id', 'content-type']) if (typeof headers[name] === 'string') picked[name] = headers[name];
    stream.on('data', (b: Buffer) => (body += b.length));
    stream.on('error', () => {});
    stream.on('end', async () => {
      view.set(stream.id!, { method: String(headers[':method']), path: String(headers[':path']), authority: String(headers[':authority']), requestBodyBytes: body, headers: picked });
      await sleep(Number(url.searchParams.get('delay') ?? 0));
      if (stream.destroyed || stream.closed) return;
      if (url.pathname === '/reset') return stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      const status = url.pathname.startsWith('/status/') ? Number(url.pathname.slice(8)) : 200;
      const size = Number(url.searchParams.get('size') ?? 5);
      const extra: Record<string, string> = {};
      const big = Number(url.searchParams.get('bigheader') ?? 0);
      if (big) extra['x-big-response'] = 'b'.repeat(big);
      for (const [k, v] of url.searchParams) if (k.startsWith('h-')) extra[`x-${k.slice(2)}`] = v;
      stream.respond({ ':status': status, 'content-type': 'text/plain', ...extra });
      stream.end(Buffer.alloc(size, 0x61));
    });
  });
  return server;
}

interface ClientRequest {
  method?: string;
  path: string;
  body?: number;
  headers?: Record<string, string>;
  /** Cancel the stream after this many response bytes. */
  cancelAfter?: number;
}

/** Sends the requests (all at once when `concurrent`), returns the client's view per stream. */
async function runClient(port: number, requests: ClientRequest[], concurrent: boolean, settings?: http2.Settings): Promise<Map<number, { status: number | null; responseBodyBytes: number; rstCode: number | null }>> {
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings: settings ?? {} });
  session.on('error', () => {});
  const out = new Map<number, { status: number | null; responseBodyBytes: number; rstCode: number | null }>();
  const one = (r: ClientRequest) =>
    new Promise<void>((resolve) => {
      const req = session.request({ ':method': r.method ?? 'GET', ':path': r.path, ...(r.headers ?? {}) }, { endStream: !r.body });
      let status: number | null = null;
      let bytes = 0;
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (b: Buffer) => {
        bytes += b.length;
        if (r.cancelAfter !== undefined && bytes >= r.cancelAfter) req.close(http2.constants.NGHTTP2_CANCEL);
      });
      req.on('error', () => {});
      req.on('close', () => {
        out.set(req.id!, { status, responseBodyBytes: bytes, rstCode: req.rstCode ?? null });
        resolve();
      });
      if (r.body) req.end(Buffer.alloc(r.body, 0x62));
    });
  if (concurrent) await Promise.all(requests.map(one));
  else for (const r of requests) await one(r);
  await new Promise<void>((r) => session.close(() => r()));
  return out;
}

async function nodeScenario(name: string, description: string, requests: ClientRequest[], concurrent: boolean, opts: { server?: http2.Settings; client?: http2.Settings } = {}): Promise<Http2Fixture> {
  const view: ServerView = new Map();
  const server = nodeServer(view, opts.server);
  const tap = await startTap(await listen(server));
  const client = await runClient(tap.port, requests, concurrent, opts.client);
  await Promise.race([tap.closed, sleep(2000)]);
  tap.close();
  server.close();
  const streams: PeerStream[] = [];
  for (const [id, c] of client) {
    const s = view.get(id);
    const reset = c.rstCode !== null && c.rstCode !== 0;
    streams.push({
      streamId: id,
      key: null,
      method: s?.method ?? null,
      path: s?.path ?? null,
      authority: s?.authority ?? null,
      status: c.status,
      requestBodyBytes: s?.requestBodyBytes ?? null,
      responseBodyBytes: c.responseBodyBytes,
      reset,
      headers: s?.headers ?? {},
      grpc: null,
    });
  }
  streams.sort((a, b) => a.streamId! - b.streamId!);
  return { name, description, recordedWith: `node ${process.version}`, start: 'preface', chunks: tap.chunks, streams };
}

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

const scenarios: Record<string, () => Promise<Http2Fixture>> = {
  basic: () =>
    nodeScenario(
      'basic',
      'Sequential requests on one h2c (prior knowledge) connection: GET, POST with a body, a 404, a response over many DATA frames, selected headers.',
      [
        { path: '/hello' },
        { method: 'POST', path: '/echo?size=12', body: 1000, headers: { 'content-type': 'application/json', 'x-correlation-id': 'corr-basic-1' } },
        { path: '/status/404' },
        { path: '/big?size=40000' },
        { method: 'DELETE', path: '/items/42', headers: { traceparent: TRACEPARENT } },
      ],
      false,
    ),
  multiplexed: () => {
    // The same pseudo-random plan on every run.
    let x = 12345;
    const rand = (n: number) => ((x = (x * 1103515245 + 12345) & 0x7fffffff) % n);
    const requests: ClientRequest[] = Array.from({ length: 64 }, (_, i) => ({
      method: i % 3 === 0 ? 'POST' : 'GET',
      path: `/m/${i}?size=${i % 16 === 0 ? 20_000 + rand(20_000) : rand(6_000)}&delay=${rand(30)}`,
      body: i % 3 === 0 ? (i % 9 === 0 ? 17_000 : rand(3_000) + 1) : 0,
      headers: { 'x-correlation-id': `mux-${i}` },
    }));
    return nodeScenario('multiplexed', '64 concurrent streams on one connection, bodies both ways up to 40 KB (most under 6 KB), responses delayed at random: frames of many streams interleave.', requests, true);
  },
  'dynamic-table': () => {
    const requests: ClientRequest[] = Array.from({ length: 40 }, (_, i) => ({
      path: `/t/${i % 5}?h-echo=${'v'.repeat(1 + (i % 7))}&size=${i}`,
      headers: {
        'x-tenant': 'tenant-a',
        cookie: `session=${'c'.repeat(200)}`,
        [`x-blob-${i % 9}`]: `${i}`.repeat(300 + 37 * i),
        'x-correlation-id': `dyn-${i}`,
      },
    }));
    return nodeScenario(
      'dynamic-table',
      'Repeated and large headers that fill and evict both dynamic tables; the client allows the server only a 1024-byte table (size update).',
      requests,
      false,
      { client: { headerTableSize: 1024 } },
    );
  },
  continuation: () =>
    nodeScenario(
      'continuation',
      'Header blocks larger than a frame: a 40 KB request header and a 30 KB response header, carried by HEADERS + CONTINUATION.',
      [
        { path: '/cont?bigheader=30000', headers: { 'x-big-request': 'q'.repeat(40_000) } },
        { path: '/after' },
      ],
      false,
      { server: { maxHeaderListSize: 200_000 }, client: { maxHeaderListSize: 200_000 } },
    ),
  reset: () =>
    nodeScenario(
      'reset',
      'RST_STREAM both ways: the server resets one stream, the client cancels another mid-response; normal streams around them.',
      [
        { path: '/ok' },
        { path: '/reset' },
        { path: '/cancel-me?size=90000&delay=5', cancelAfter: 1 },
        { path: '/ok-again' },
      ],
      false,
    ),
  grpc: grpcScenario,
  upgrade: upgradeScenario,
};

/** Identity (de)serialization: no protobuf needed to speak gRPC's framing. */
const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
const SERVICE: grpc.ServiceDefinition = {
  Echo: { path: '/demo.v1.Items/Echo', requestStream: false, responseStream: false, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
  Fail: { path: '/demo.v1.Items/Fail', requestStream: false, responseStream: false, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
  List: { path: '/demo.v1.Items/List', requestStream: false, responseStream: true, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
};

async function grpcScenario(): Promise<Http2Fixture> {
  const server = new grpc.Server();
  const seen = new Map<string, { path: string; requestBodyBytes: number }>();
  const corr = (m: grpc.Metadata) => String(m.get('x-correlation-id')[0]);
  server.addService(SERVICE, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      seen.set(corr(call.metadata), { path: call.getPath(), requestBodyBytes: call.request.length });
      setTimeout(() => cb(null, Buffer.concat([call.request, call.request])), 5);
    },
    Fail: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      seen.set(corr(call.metadata), { path: call.getPath(), requestBodyBytes: call.request.length });
      cb({ code: grpc.status.NOT_FOUND, details: 'no such item: 42 ✓' });
    },
    List: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      seen.set(corr(call.metadata), { path: call.getPath(), requestBodyBytes: call.request.length });
      for (let i = 0; i < 5; i++) call.write(Buffer.alloc(100 * (i + 1), i));
      call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  const tap = await startTap(port);
  const Client = grpc.makeGenericClientConstructor(SERVICE, 'Items');
  const client = new Client(`127.0.0.1:${tap.port}`, grpc.credentials.createInsecure());
  const results = new Map<string, { status: number; details: string; responseBodyBytes: number }>();
  const meta = (id: string) => {
    const m = new grpc.Metadata();
    m.set('x-correlation-id', id);
    m.set('traceparent', TRACEPARENT);
    return m;
  };
  type Unary = (req: Buffer, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r?: Buffer) => void) => void;
  const unary = (method: 'Echo' | 'Fail', id: string, size: number) =>
    new Promise<void>((resolve) => {
      (client[method] as unknown as Unary).call(client, Buffer.alloc(size, 7), meta(id), (e, r) => {
        results.set(id, { status: e ? e.code : 0, details: e ? e.details : '', responseBodyBytes: r?.length ?? 0 });
        resolve();
      });
    });
  const list = (id: string) =>
    new Promise<void>((resolve) => {
      const call = (client['List'] as unknown as (req: Buffer, m: grpc.Metadata) => grpc.ClientReadableStream<Buffer>).call(client, Buffer.alloc(3), meta(id));
      let bytes = 0;
      call.on('data', (b: Buffer) => (bytes += b.length));
      call.on('status', (s: grpc.StatusObject) => {
        results.set(id, { status: s.code, details: s.details, responseBodyBytes: bytes });
        resolve();
      });
      call.on('error', () => {});
    });
  await unary('Echo', 'grpc-warmup', 10);
  await Promise.all([
    ...Array.from({ length: 12 }, (_, i) => unary('Echo', `grpc-echo-${i}`, 50 * i + 1)),
    unary('Fail', 'grpc-fail-1', 20),
    list('grpc-list-1'),
    unary('Fail', 'grpc-fail-2', 0),
  ]);
  client.close();
  await Promise.race([tap.closed, sleep(2000)]);
  tap.close();
  server.forceShutdown();
  const streams: PeerStream[] = [...results].map(([id, r]) => ({
    streamId: null,
    key: id,
    method: 'POST',
    path: seen.get(id)?.path ?? null,
    authority: null,
    status: 200,
    // gRPC length-prefixes each message (5 bytes).
    requestBodyBytes: seen.has(id) ? seen.get(id)!.requestBodyBytes + 5 : null,
    responseBodyBytes: null,
    reset: false,
    headers: { 'x-correlation-id': id, traceparent: TRACEPARENT },
    grpc: { status: r.status, message: r.details || null },
  }));
  return { name: 'grpc', description: '@grpc/grpc-js unary calls (OK and NOT_FOUND with a non-ASCII grpc-message), a server-streaming call, 15 calls multiplexed.', recordedWith: `node ${process.version}, @grpc/grpc-js`, start: 'preface', chunks: tap.chunks, streams };
}

/**
 * Upgrade: h2c. curl (a real client: HTTP/1.1 request with Upgrade: h2c and HTTP2-Settings,
 * then the preface) against a minimal server written here: Node's http2 cannot take an
 * upgrade, so the server side is hand-made frames (SETTINGS, SETTINGS ACK, and stream 1's
 * response: HEADERS with static-table :status 200, then DATA with END_STREAM).
 */
async function upgradeScenario(): Promise<Http2Fixture> {
  const body = Buffer.from('upgraded!\n');
  const server = createServer((socket) => {
    let head = Buffer.alloc(0);
    let upgraded = false;
    let acked = false;
    socket.on('data', (b: Buffer) => {
      if (!upgraded) {
        head = Buffer.concat([head, b]);
        if (!head.includes('\r\n\r\n')) return;
        upgraded = true;
        socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
        socket.write(h2Frame(4, 0, 0));
        // :status 200 (static index 8) and content-type: text/plain (literal, static name 31).
        const block = Buffer.concat([Buffer.from([0x88, 0x0f, 0x10, 10]), Buffer.from('text/plain')]);
        socket.write(Buffer.concat([h2Frame(1, 4, 1, block), h2Frame(0, 1, 1, body)]));
        return;
      }
      // After the preface, the client's SETTINGS: acknowledge it once.
      if (!acked) {
        acked = true;
        socket.write(h2Frame(4, 1, 0));
      }
    });
    socket.on('error', () => {});
  });
  const tap = await startTap(await listen(server));
  const curl = spawn('curl', ['-s', '--http2', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', '-H', 'x-correlation-id: upgrade-1', `http://127.0.0.1:${tap.port}/upgrade/path?q=1`]);
  let out = '';
  curl.stdout.on('data', (b: Buffer) => (out += b.toString()));
  await new Promise((r) => curl.on('close', r));
  await Promise.race([tap.closed, sleep(1000)]);
  tap.close();
  server.close();
  const [status, size] = out.trim().split(' ').map(Number);
  return {
    name: 'upgrade',
    description: 'HTTP/1.1 Upgrade: h2c from curl; stream 1 is the upgraded request, answered in HTTP/2 by hand-made server frames.',
    recordedWith: 'curl with nghttp2 (client); hand-made frames (server)',
    start: 'upgrade',
    chunks: tap.chunks,
    streams: [
      { streamId: 1, key: null, method: 'GET', path: '/upgrade/path?q=1', authority: `127.0.0.1:${tap.port}`, status: status!, requestBodyBytes: 0, responseBodyBytes: size!, reset: false, headers: { 'x-correlation-id': 'upgrade-1' }, grpc: null },
    ],
  };
}

const wanted = process.argv.slice(2);
mkdirSync(OUT, { recursive: true });
for (const [name, run] of Object.entries(scenarios)) {
  if (wanted.length && !wanted.includes(name)) continue;
  const fixture = await run();
  writeFileSync(new URL(`${name}.json`, OUT), `${JSON.stringify(fixture, null, 1)}\n`);
  console.log(`${name}: ${fixture.chunks.length} chunks, ${fixture.streams.length} streams`);
}
