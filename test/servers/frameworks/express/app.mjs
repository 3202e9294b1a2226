// Express (Node 24) for the framework matrix. Prints "LISTENING <port>" once bound.
//
// Routes (the request id comes in X-Request-Id, which the agent reads as correlation_id):
//   GET /work/<us>    burns <us> microseconds of this thread's CPU
//   GET /size/<bytes> answers a body of <bytes> bytes
//   GET /fanout       calls the upstream (UPSTREAM_PORT) twice, one after the other:
//                     fetch() on undici's pooled keep-alive connections, then http.request
//                     with agent:false (a new connection); paths carry the request id
//   anything else     404 from the handler below (so it has a truth line too)
// After each handler, one JSON line goes to PERFCATCH_TRUTH_FILE (TruthLine in
// test/harness/frameworks.ts) with the handler's own CPU, read with CLOCK_THREAD_CPUTIME_ID
// through the addon in ../../node-thread-cpu (PERFCATCH_THREAD_CPU_ADDON), summed over its
// synchronous segments: an await hands the thread to other requests, so the clock stops at
// each await. /fanout's line also lists its two calls and whether each opened its connection.
import diagnostics from 'node:diagnostics_channel';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(process.env.FRAMEWORK_NODE_MODULES + '/');
const express = require('express');
const { threadCpuNs } = require(process.env.PERFCATCH_THREAD_CPU_ADDON);

const upstreamPort = Number(process.env.UPSTREAM_PORT || 0);
const truthFd = fs.openSync(process.env.PERFCATCH_TRUTH_FILE, 'a');
const nowNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));

// Whether each fetch() went out on a connection of undici's pool or on one it just opened:
// the first request written on a socket opened it. Keyed by path (which carries the id).
const seenSockets = new WeakSet();
const fetchOpened = new Map();
diagnostics.subscribe('undici:client:sendHeaders', ({ request, socket }) => {
  fetchOpened.set(request.path, !seenSockets.has(socket));
  seenSockets.add(socket);
});

/** CPU of one handler, counted only while it runs (between awaits). */
class HandlerClock {
  constructor(id) {
    this.id = id;
    this.wallStart = nowNs();
    this.cpu = 0;
    this.since = threadCpuNs();
    this.deps = undefined;
  }
  pause() {
    this.cpu += threadCpuNs() - this.since;
  }
  resume() {
    this.since = threadCpuNs();
  }
  /** Stops the clock and appends the truth line. */
  finish() {
    this.pause();
    const line = { id: this.id, pid: process.pid, tid: process.pid, cpu_ns: Math.round(this.cpu), wall_start_ns: String(this.wallStart), wall_end_ns: String(nowNs()), parallel: false, deps: this.deps };
    fs.writeSync(truthFd, JSON.stringify(line) + '\n');
  }
}

function burnUs(us) {
  const until = threadCpuNs() + us * 1000;
  let x = 0;
  while (threadCpuNs() < until) x += Math.sqrt(x + 1);
  return x;
}

function newConnectionGet(path) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: upstreamPort, path, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

const app = express();
app.set('etag', false);
app.set('x-powered-by', false);

app.get('/work/:us', (req, res) => {
  const clock = new HandlerClock(req.get('x-request-id'));
  burnUs(Number(req.params.us));
  res.type('text/plain').send('worked\n');
  clock.finish();
});

app.get('/size/:bytes', (req, res) => {
  const clock = new HandlerClock(req.get('x-request-id'));
  res.type('text/plain').send(Buffer.alloc(Number(req.params.bytes), 'x'));
  clock.finish();
});

app.get('/fanout', async (req, res) => {
  const id = req.get('x-request-id');
  const clock = new HandlerClock(id);
  try {
    const pooledPath = `/dep/${id}/pooled`;
    const freshPath = `/dep/${id}/new`;
    const pending = fetch(`http://127.0.0.1:${upstreamPort}${pooledPath}`);
    clock.pause();
    const pooled = await pending;
    clock.resume();
    const bodyPending = pooled.text();
    clock.pause();
    await bodyPending;
    clock.resume();
    const freshPending = newConnectionGet(freshPath);
    clock.pause();
    const fresh = await freshPending;
    clock.resume();
    clock.deps = [
      { path: pooledPath, new_connection: fetchOpened.get(pooledPath) ?? null },
      { path: freshPath, new_connection: true },
    ];
    fetchOpened.delete(pooledPath);
    res.type('text/plain').send(`fanout ${pooled.status} ${fresh.status}\n`);
  } catch (err) {
    res.status(502).type('text/plain').send(String(err));
  }
  clock.finish();
});

app.use((req, res) => {
  const clock = new HandlerClock(req.get('x-request-id'));
  res.status(404).type('text/plain').send('not here\n');
  clock.finish();
});

const server = app.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});
server.keepAliveTimeout = 60_000;
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
