// HTTP/2 cleartext (prior knowledge) server whose streams spend a known CPU time: GET
// /spin?ms=N runs N ms of the serving thread's own CPU (CLOCK_THREAD_CPUTIME_ID, through the
// addon in node-thread-cpu/ named by PERFCATCH_THREAD_CPU_ADDON) before it answers, and
// reports what the handler measured in the response header x-handler-cpu-us.
// Prints "LISTENING <port>".
import http2 from 'node:http2';
import { createRequire } from 'node:module';

const { threadCpuNs } = createRequire(import.meta.url)(process.env.PERFCATCH_THREAD_CPU_ADDON);
const threadCpuUs = () => Number(threadCpuNs()) / 1000;

const server = http2.createServer();
server.on('stream', (stream, headers) => {
  const url = new URL(headers[':path'], 'http://x');
  stream.on('error', () => {});
  stream.resume();
  stream.on('end', () => {
    const start = threadCpuUs();
    const until = start + Number(url.searchParams.get('ms') ?? 1) * 1000;
    let x = 0;
    while (threadCpuUs() < until) x += Math.sqrt(x + 1);
    stream.respond({ ':status': 200, 'x-handler-cpu-us': String(threadCpuUs() - start) });
    stream.end(`spun ${x > 0}\n`);
  });
});
server.listen(0, '127.0.0.1', () => console.log(`LISTENING ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
