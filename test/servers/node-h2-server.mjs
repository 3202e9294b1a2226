// HTTP/2 cleartext (h2c, prior knowledge) test server, and a gRPC server (@grpc/grpc-js) on
// another port of the same process. Prints "LISTENING <h2 port>" then "GRPC <grpc port>".
//   GET|POST /ok/<i>?n=<bytes>   200 with n bytes (POST: the body's length more)
//   GET /missing/<i>             404
//   GET /fail/<i>                500
// gRPC: /perfcatch.test.Echo/Call (unary, bytes in, bytes out): the request's first byte picks
// the outcome: 0 OK (echo), 1 NOT_FOUND, 2 INTERNAL. /perfcatch.test.Echo/Stream (server
// streaming): the request is a decimal "count,size", answered with count messages of size bytes.
import http2 from 'node:http2';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');

const server = http2.createServer();
server.on('stream', (stream, headers) => {
  const method = headers[':method'];
  const url = new URL(headers[':path'], 'http://x');
  let body = 0;
  stream.on('data', (d) => (body += d.length));
  stream.on('end', () => {
    const status = url.pathname.startsWith('/missing') ? 404 : url.pathname.startsWith('/fail') ? 500 : 200;
    const n = Number(url.searchParams.get('n') ?? 16) + (method === 'POST' ? body : 0);
    stream.respond({ ':status': status, 'content-type': 'application/octet-stream' });
    stream.end(Buffer.alloc(n, 0x61));
  });
  stream.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => {
  console.log(`LISTENING ${server.address().port}`);
  const identity = (b) => b;
  const def = {
    Call: { path: '/perfcatch.test.Echo/Call', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
    Stream: { path: '/perfcatch.test.Echo/Stream', requestStream: false, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
  };
  const g = new grpc.Server();
  g.addService(def, {
    Call: (call, cb) => {
      const kind = call.request[0] ?? 0;
      if (kind === 1) return cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
      if (kind === 2) return cb({ code: grpc.status.INTERNAL, details: 'it broke' });
      cb(null, call.request);
    },
    Stream: (call) => {
      const [count, size] = call.request.toString().split(',').map(Number);
      for (let i = 0; i < count; i++) call.write(Buffer.alloc(size, 0x62));
      call.end();
    },
  });
  g.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    console.log(`GRPC ${port}`);
  });
});
process.on('SIGTERM', () => process.exit(0));
