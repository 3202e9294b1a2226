"""Sequential keep-alive client for latency ground truth.

A separate, single-threaded process with blocking sockets: it wakes as soon as the response
arrives, without the event-loop and GC pauses of the test runner itself. Usage:
    latency_client.py PORT COUNT PREFIX
Sends COUNT GET requests on one connection (alternating /compute?ms=1 and /hello/<i>), each
with X-Correlation-ID PREFIX-<i>, and prints one JSON line per request.
"""
import json
import socket
import sys
import time


def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head_end = buf.index(b"\r\n\r\n") + 4
    head = buf[:head_end].decode("latin1")
    status = int(head.split(" ", 2)[1])
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(buf) < head_end + length:
        buf += sock.recv(65536)
    return status, head_end + length, buf[head_end + length:]


def main():
    port, count, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    for i in range(count):
        path = "/compute?ms=1" if i % 2 == 0 else f"/hello/{i}"
        cid = f"{prefix}-{i}"
        req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Correlation-ID: {cid}\r\n\r\n".encode()
        t0 = time.perf_counter_ns()
        sock.sendall(req)
        status, received, buf = read_response(sock, buf)
        latency = time.perf_counter_ns() - t0
        print(json.dumps({"id": cid, "path": path, "status": status, "bytes_sent": len(req),
                          "bytes_received": received, "latency_ms": latency / 1e6}), flush=True)
    sock.close()


if __name__ == "__main__":
    main()
