"""Ground-truth Python server: ThreadingHTTPServer, HTTP/1.1 keep-alive, one thread per
connection. Prints "LISTENING <port>" once bound. X-Thread-Cpu-Ns reports the handler
thread's CPU time (time.thread_time_ns) spent producing the response."""
import os
import socket
import sys
import threading
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


TRUTH_FILE = os.environ.get("PERFCATCH_TRUTH_FILE")
TRUTH = open(TRUTH_FILE, "a", buffering=1) if TRUTH_FILE else None
TRUTH_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_one_request(self):
        # The truth clock starts before the request line is read: parsing is part of the
        # request's cost (the thread's CPU clock does not advance while it waits for bytes).
        self._truth_t0 = time.thread_time_ns()
        super().handle_one_request()

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        # Head and body go out in two writes: without NODELAY, Nagle holds the body until the
        # client's delayed ACK (40 ms), and the client's latency stops matching the server's.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

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
        cid = self.headers.get("X-Correlation-ID")
        if TRUTH and cid:
            # The clock stops right after the last write: the write releases the GIL, and
            # under contention the thread sleeps there, which ends the request's charging.
            cpu = time.thread_time_ns() - self._truth_t0
            line = f"{cid} {cpu} {vm_rss_bytes()}\n"
            with TRUTH_LOCK:
                TRUTH.write(line)

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
