"""Ground truth for the framework matrix: one JSON line per request (TruthLine in
test/harness/frameworks.ts) appended to PERFCATCH_TRUTH_FILE after each handler.

The handler's CPU is this thread's clock (time.thread_time_ns, CLOCK_THREAD_CPUTIME_ID),
counted only while the handler runs: in asyncio an await hands the thread to other requests,
so the clock stops at each await (pause/resume around it)."""
import json
import os
import threading
import time

_FD = os.open(os.environ["PERFCATCH_TRUTH_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def burn_us(us):
    """Spins until this thread has spent `us` microseconds on CPU."""
    until = time.thread_time_ns() + us * 1000
    x = 0.0
    while time.thread_time_ns() < until:
        x += (x + 1) ** 0.5
    return x


class HandlerClock:
    def __init__(self, request_id):
        self.request_id = request_id
        self.wall_start = time.time_ns()
        self.cpu = 0
        self.since = time.thread_time_ns()
        # For a handler that calls out: [{"path", "new_connection"}] per call, in order.
        self.deps = None

    def pause(self):
        self.cpu += time.thread_time_ns() - self.since

    def resume(self):
        self.since = time.thread_time_ns()

    def finish(self):
        """Stops the clock and appends the truth line (one write: lines never interleave)."""
        self.pause()
        line = {
            "id": self.request_id,
            "pid": os.getpid(),
            "tid": threading.get_native_id(),
            "cpu_ns": self.cpu,
            "wall_start_ns": str(self.wall_start),
            "wall_end_ns": str(time.time_ns()),
            "parallel": False,
        }
        if self.deps is not None:
            line["deps"] = self.deps
        os.write(_FD, (json.dumps(line) + "\n").encode())
