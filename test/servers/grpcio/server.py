"""grpcio peer for test/e2e/grpc-peers.test.ts: perfcatch.test.Echo as test/servers/grpc-go
serves it (Call: the first payload byte picks OK, NOT_FOUND or INTERNAL; Stream: "COUNT,SIZE"),
with google.protobuf.BytesValue messages encoded by hand (field 1, bytes), so no generated code.

    python server.py TRUTH_FILE    listens on 127.0.0.1:0, prints "LISTENING <port>"

Every call appends one JSON line to TRUTH_FILE: its x-correlation-id, method and status code
as the server decided them.
"""
import json
import signal
import sys
import threading
from concurrent import futures

import grpc

SERVICE = "perfcatch.test.Echo"


def bytes_value(data: bytes) -> bytes:
    """A BytesValue message: tag 0x0a, varint length, the bytes."""
    n = len(data)
    head = bytearray([0x0A])
    while n >= 0x80:
        head.append((n & 0x7F) | 0x80)
        n >>= 7
    head.append(n)
    return bytes(head) + data


def bytes_value_payload(message: bytes) -> bytes:
    if not message:
        return b""
    if message[0] != 0x0A:
        raise ValueError("not a BytesValue")
    n, shift, at = 0, 0, 1
    while True:
        b = message[at]
        at += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return message[at : at + n]


class Truth:
    def __init__(self, path: str) -> None:
        self.file = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, context: grpc.ServicerContext, method: str, code: grpc.StatusCode) -> None:
        ids = [v for k, v in context.invocation_metadata() if k == "x-correlation-id"]
        line = json.dumps({"id": ids[0] if ids else None, "method": method, "code": code.value[0]})
        with self.lock:
            self.file.write(line + "\n")


def main() -> None:
    truth = Truth(sys.argv[1])

    def call(request: bytes, context: grpc.ServicerContext) -> bytes:
        payload = bytes_value_payload(request)
        kind = payload[0] if payload else 0
        method = f"/{SERVICE}/Call"
        if kind == 1:
            truth.write(context, method, grpc.StatusCode.NOT_FOUND)
            context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        if kind == 2:
            truth.write(context, method, grpc.StatusCode.INTERNAL)
            context.abort(grpc.StatusCode.INTERNAL, "it broke")
        truth.write(context, method, grpc.StatusCode.OK)
        return bytes_value(bytes(len(payload) * 2))

    def stream(request: bytes, context: grpc.ServicerContext):
        count, size = (int(x) for x in bytes_value_payload(request).decode().split(","))
        for _ in range(count):
            yield bytes_value(bytes(size))
        truth.write(context, f"/{SERVICE}/Stream", grpc.StatusCode.OK)

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Call": grpc.unary_unary_rpc_method_handler(call),
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
        },
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)],
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"LISTENING {port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop(grace=None)


if __name__ == "__main__":
    main()
