"""Ground-truth Python server: ThreadingHTTPServer, HTTP/1.1 keep-alive, one thread per
connection. Prints "LISTENING <port>" once bound. X-Thread-Cpu-Ns reports the handler
thread's CPU time (time.thread_time_ns) spent producing the response."""
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def vm_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def burn_cpu(ms):
    until = time.thread_time_ns() + ms * 1_000_000
    x = 0.0
    while time.thread_time_ns() < until:
        x += (x + 1) ** 0.5
    return x


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _respond(self):
        t0 = time.thread_time_ns()
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        status = int(q.get("status", ["200"])[0])
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length) if length else b""
        if url.path == "/compute":
            burn_cpu(float(q.get("ms", ["1"])[0]))
            body = b"computed\n"
        elif url.path == "/echo":
            body = payload
        elif url.path == "/size":
            body = b"x" * int(q.get("bytes", ["0"])[0])
        else:
            body = f"hello {url.path}\n".encode()
        cpu = time.thread_time_ns() - t0
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Thread-Cpu-Ns", str(cpu))
        self.send_header("X-Vm-Rss-Bytes", str(vm_rss_bytes()))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _respond
    do_POST = _respond
    do_PUT = _respond
    do_DELETE = _respond


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)
    server.serve_forever()
