// Ground-truth Node http server (event loop). Prints "LISTENING <port>" once bound.
// Every response carries X-Thread-Cpu-Ns: the handler's own on-CPU time, measured with
// process.threadCpuUsage() around the synchronous handler body.
import fs from 'node:fs';
import http from 'node:http';

const port = Number(process.argv[2] ?? 0);

// VmRSS of this process in bytes, from /proc/self/status.
function vmRssBytes() {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'latin1'));
  return m ? Number(m[1]) * 1024 : 0;
}

// Counts user + system time: the loop is mostly getrusage() syscalls, and the kernel's
// user/system split is tick-sampled, so user time alone can lag the real CPU time by 10x.
function threadCpuMs() {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
}

function burnCpu(ms) {
  const until = threadCpuMs() + ms;
  let x = 0;
  while (threadCpuMs() < until) x += Math.sqrt(x + 1);
  return x;
}

const server = http.createServer((req, res) => {
  const cpu0 = process.threadCpuUsage();
  const url = new URL(req.url, 'http://x');
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const t0 = process.threadCpuUsage();
    let status = Number(url.searchParams.get('status') ?? 200);
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
    const t1 = process.threadCpuUsage(t0);
    void cpu0;
    res.writeHead(status, {
      'Content-Type': 'text/plain',
      'Content-Length': Buffer.byteLength(body),
      'X-Thread-Cpu-Ns': String((t1.user + t1.system) * 1000),
      'X-Vm-Rss-Bytes': String(vmRssBytes()),
    });
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
