"""gunicorn for the framework matrix: 3 sync workers (prefork: one request at a time per
worker process, no keep-alive), bound to a free port. Prints "LISTENING <port>" once the
socket is bound, for test/harness/frameworks.ts (which then waits for the 3 workers)."""
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:0")
workers = 3
worker_class = "sync"
accesslog = None
wsgi_app = "flask_app:app"


def when_ready(server):
    print(f"LISTENING {server.LISTENERS[0].getsockname()[1]}", flush=True)
