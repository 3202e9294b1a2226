// Ground-truth Node http server (event loop). Prints "LISTENING <port>" once bound.
// Every response carries:
//   X-Thread-Cpu-Ns: the handler's own on-CPU time from the start of the request handler to
//     just before the response head is written. Measured with CLOCK_THREAD_CPUTIME_ID through
//     the small addon in node-thread-cpu/ (PERFCATCH_THREAD_CPU_ADDON); without it, with
//     process.threadCpuUsage(), which only advances at scheduler ticks.
//   X-Vm-Rss-Bytes: VmRSS of this process right before the response is written.
// /fanout?to=PORT makes two outbound calls while serving: one on a new connection, one on a
// pooled keep-alive connection (opened by an earlier /warm?to=PORT).
// With PERFCATCH_TRUTH_FILE set, each request also appends "<x-correlation-id> <cpu_ns>
// <rss_bytes>" once its response is written: CPU from the socket's first 'data' event for
// the request (so HTTP parsing is included) to just after res.end() (so the write is),
// VmRSS right after it.
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';

const port = Number(process.argv[2] ?? 0);
const addon = process.env.PERFCATCH_THREAD_CPU_ADDON;
const threadCpuNs = addon
  ? createRequire(import.meta.url)(addon).threadCpuNs
  : () => {
      const u = process.threadCpuUsage();
      return (u.user + u.system) * 1000;
    };

function vmRssBytes() {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'latin1'));
  return m ? Number(m[1]) * 1024 : 0;
}

function burnCpu(ms) {
  const until = threadCpuNs() + ms * 1e6;
  let x = 0;
  while (threadCpuNs() < until) x += Math.sqrt(x + 1);
  return x;
}

const pool = new http.Agent({ keepAlive: true, maxSockets: 1 });

function call(to, path, agent) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: to, path, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
  });
}

const truthFile = process.env.PERFCATCH_TRUTH_FILE;
const truthFd = truthFile ? fs.openSync(truthFile, 'a') : null;

function respond(res, status, body, t0) {
  const cpu = threadCpuNs() - t0;
  res.writeHead(status, {
    'Content-Type': 'text/plain',
    'Content-Length': Buffer.byteLength(body),
    'X-Thread-Cpu-Ns': String(Math.round(cpu)),
    'X-Vm-Rss-Bytes': String(vmRssBytes()),
  });
  res.end(body);
  const id = res.req.headers['x-correlation-id'];
  const socket = res.req.socket;
  const start = socket[requestStart] ?? t0;
  socket[requestStart] = undefined; // the next 'data' starts the next request
  if (truthFd !== null && id) {
    // RSS first, then the clock: the request's CPU runs until the thread goes back to the
    // event loop, so the bookkeeping belongs inside the measured window.
    const rss = vmRssBytes();
    const total = threadCpuNs() - start;
    fs.writeSync(truthFd, `${id} ${Math.round(total)} ${rss}\n`);
  }
}

const server = http.createServer((req, res) => {
  const t0 = threadCpuNs();
  const url = new URL(req.url, 'http://x');
  const status = Number(url.searchParams.get('status') ?? 200);
  const to = Number(url.searchParams.get('to') ?? 0);
  if (url.pathname === '/warm') {
    call(to, '/warm-dep', pool).then((r) => respond(res, status, `warm ${r.status}\n`, t0), (e) => respond(res, 502, String(e), t0));
    return;
  }
  if (url.pathname === '/fanout') {
    (async () => {
      const fresh = await call(to, '/dep-new', false);
      const pooled = await call(to, '/dep-pooled', pool);
      return `fanout ${fresh.status} ${pooled.status}\n`;
    })().then((body) => respond(res, status, body, t0), (e) => respond(res, 502, String(e), t0));
    return;
  }
  if (url.pathname === '/chunked') {
    // A chunked response: several writes, no Content-Length.
    const parts = Number(url.searchParams.get('parts') ?? 4);
    const size = Number(url.searchParams.get('size') ?? 1000);
    req.resume();
    req.on('end', () => {
      res.writeHead(status, { 'Content-Type': 'text/plain', 'X-Thread-Cpu-Ns': String(Math.round(threadCpuNs() - t0)) });
      for (let i = 0; i < parts; i++) res.write(Buffer.alloc(size, 97 + (i % 26)));
      res.end();
    });
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let body;
    if (url.pathname === '/compute') {
      burnCpu(Number(url.searchParams.get('ms') ?? 1));
      body = 'computed\n';
    } else if (url.pathname === '/echo') {
      body = Buffer.concat(chunks);
    } else if (url.pathname === '/size') {
      body = Buffer.alloc(Number(url.searchParams.get('bytes') ?? 0), 'x');
    } else {
      body = `hello ${url.pathname}\n`;
    }
    respond(res, status, body, t0);
  });
});
// The thread clock when a request's first bytes reach JavaScript, before HTTP parsing.
const requestStart = Symbol('requestStart');
server.on('connection', (socket) => {
  socket.prependListener('data', () => {
    if (socket[requestStart] === undefined) socket[requestStart] = threadCpuNs();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
