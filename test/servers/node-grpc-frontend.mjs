// A gRPC frontend (@grpc/grpc-js) whose unary handler calls a gRPC backend on this host over
// one pooled channel (one HTTP/2 connection), forwarding the request and its x-correlation-id,
// and answers with the backend's outcome. Usage: node node-grpc-frontend.mjs <backend port>.
// Prints "GRPC <port>". /perfcatch.test.Front/Call -> /perfcatch.test.Echo/Call (the backend
// of node-h2-server.mjs: the request's first byte picks OK, NOT_FOUND or INTERNAL).
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');

const identity = (b) => b;
const unary = (path) => ({ path, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity });
const Backend = grpc.makeGenericClientConstructor({ Call: unary('/perfcatch.test.Echo/Call') }, 'Echo');
const backend = new Backend(`127.0.0.1:${process.argv[2]}`, grpc.credentials.createInsecure());

const server = new grpc.Server();
server.addService({ Call: unary('/perfcatch.test.Front/Call') }, {
  Call: (call, cb) => {
    const md = new grpc.Metadata();
    const id = call.metadata.get('x-correlation-id')[0];
    if (id !== undefined) md.set('x-correlation-id', String(id));
    backend.Call(call.request, md, (err, reply) => (err ? cb({ code: err.code, details: err.details }) : cb(null, reply)));
  },
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  console.log(`GRPC ${port}`);
});
process.on('SIGTERM', () => process.exit(0));
