"""Flask app for the framework matrix, served by gunicorn sync workers (gunicorn.conf.py).

Routes (request id in X-Request-Id, which the agent reads as correlation_id):
  GET /work/<us>    burns <us> microseconds of this thread's CPU
  GET /size/<bytes> answers a body of <bytes> bytes
  anything else     404 from the handler below (so it has a truth line too)"""
from flask import Flask, Response, request

from truth import HandlerClock, burn_us

app = Flask(__name__)


@app.get("/work/<int:us>")
def work(us):
    clock = HandlerClock(request.headers.get("X-Request-Id"))
    burn_us(us)
    res = Response("worked\n", mimetype="text/plain")
    clock.finish()
    return res


@app.get("/size/<int:size>")
def size(size):
    clock = HandlerClock(request.headers.get("X-Request-Id"))
    res = Response(b"x" * size, mimetype="text/plain")
    clock.finish()
    return res


@app.route("/", defaults={"tail": ""})
@app.route("/<path:tail>")
def not_found(tail):
    clock = HandlerClock(request.headers.get("X-Request-Id"))
    res = Response("not here\n", status=404, mimetype="text/plain")
    clock.finish()
    return res
