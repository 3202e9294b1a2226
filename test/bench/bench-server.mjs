// Benchmark target: a plain Node http server. /hello answers at once; /compute?ms=N spins the
// CPU for N ms of wall time (on an otherwise idle core that is N ms of CPU). Prints
// "LISTENING <port>".
import http from 'node:http';

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/compute')) {
    const ms = Number(new URL(req.url, 'http://x').searchParams.get('ms') ?? 1);
    const until = process.hrtime.bigint() + BigInt(Math.round(ms * 1e6));
    let x = 0;
    while (process.hrtime.bigint() < until) x += Math.sqrt(x + 1);
    res.end(`computed ${x > 0}\n`);
    return;
  }
  res.end('hello world\n');
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => process.stdout.write(`LISTENING ${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
