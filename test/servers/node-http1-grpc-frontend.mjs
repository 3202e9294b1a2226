// An HTTP/1.1 frontend (node:http, as Express runs on) whose handler calls a gRPC backend on
// this host over one pooled channel (@grpc/grpc-js: one HTTP/2 connection), forwarding the
// request's x-correlation-id, and answers 200 with the call's gRPC status as its body.
// Usage: node node-http1-grpc-frontend.mjs <backend grpc port>. Prints "LISTENING <port>".
// GET /call/<i>: the call's first byte is i % 3 (the backend of node-h2-server.mjs answers OK,
// NOT_FOUND or INTERNAL).
import http from 'node:http';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');

const identity = (b) => b;
const unary = (path) => ({ path, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity });
const Backend = grpc.makeGenericClientConstructor({ Call: unary('/perfcatch.test.Echo/Call') }, 'Echo');
const backend = new Backend(`127.0.0.1:${process.argv[2]}`, grpc.credentials.createInsecure());

const server = http.createServer((req, res) => {
  const i = Number(req.url.split('/')[2] ?? 0);
  const md = new grpc.Metadata();
  const id = req.headers['x-correlation-id'];
  if (id !== undefined) md.set('x-correlation-id', String(id));
  const payload = Buffer.alloc(1 + (i % 300), 0);
  payload[0] = i % 3;
  backend.Call(payload, md, (err) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(String(err ? err.code : 0));
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(`LISTENING ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
