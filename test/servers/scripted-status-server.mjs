// A raw TCP server that writes each response's status line the way the request's path asks,
// for the kernel's status reading (test/e2e/response-status.test.ts). Prints "LISTENING <port>".
// Every response has a 3-byte body "ok\n"; connections stay open (keep-alive).
//   /one/<code>   the whole response in one write, status line "HTTP/1.1 <code> Reason"
//   /bare/<code>  one write, "HTTP/1.1 <code>" and CRLF, no reason phrase
//   /http10       one write, "HTTP/1.0 200 OK"
//   /split        "HTTP/1.1 2" in one write, "01 Created ..." 5 ms later in the next
//   /tiny         "HTTP/1.1 " in one write, "202 Accepted ..." 5 ms later
//   /garbage      "HTTP/1.1 2x0 Nope": not a status line
//   /via/<port>/<path>  first calls 127.0.0.1:<port> (another of these servers) for /<path> on
//                 a new connection, reads its whole response, then answers "HTTP/1.1 200 OK"
import net from 'node:net';

const BODY = 'ok\n';
const rest = (line) => `${line}\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`;

function answer(socket, path) {
  const later = (text) => setTimeout(() => socket.write(text), 5);
  let m;
  if ((m = /^\/one\/(\d+)$/.exec(path))) return socket.write(rest(`HTTP/1.1 ${m[1]} Reason`));
  if ((m = /^\/bare\/(\d+)$/.exec(path))) return socket.write(rest(`HTTP/1.1 ${m[1]}`));
  if (path === '/http10') return socket.write(rest('HTTP/1.0 200 OK'));
  if (path === '/split') {
    socket.write('HTTP/1.1 2');
    return later(rest('01 Created'));
  }
  if (path === '/tiny') {
    socket.write('HTTP/1.1 ');
    return later(rest('202 Accepted'));
  }
  if (path === '/garbage') return socket.write(rest('HTTP/1.1 2x0 Nope'));
  if ((m = /^\/via\/(\d+)(\/.*)$/.exec(path))) {
    const upstream = net.connect(Number(m[1]), '127.0.0.1', () => upstream.write(`GET ${m[2]} HTTP/1.1\r\nHost: upstream\r\n\r\n`));
    let got = '';
    upstream.on('data', (d) => {
      got += d.toString('latin1');
      const headEnd = got.indexOf('\r\n\r\n');
      if (headEnd === -1 || got.length < headEnd + 4 + BODY.length) return;
      upstream.destroy();
      socket.write(rest('HTTP/1.1 200 OK'));
    });
    upstream.on('error', () => socket.destroy());
    return;
  }
  return socket.write(rest('HTTP/1.1 404 Not Found'));
}

const server = net.createServer((socket) => {
  let pending = '';
  socket.on('data', (chunk) => {
    pending += chunk.toString('latin1');
    let end;
    while ((end = pending.indexOf('\r\n\r\n')) !== -1) {
      const head = pending.slice(0, end);
      pending = pending.slice(end + 4);
      answer(socket, head.split(' ')[1] ?? '/');
    }
  });
  socket.on('error', () => {});
});
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => console.log(`LISTENING ${server.address().port}`));
