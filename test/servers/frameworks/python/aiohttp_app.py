"""aiohttp server (asyncio event loop) for the framework matrix. Prints "LISTENING <port>".

Routes (request id in X-Request-Id, which the agent reads as correlation_id):
  GET /work/{us}    burns {us} microseconds of this thread's CPU
  GET /size/{bytes} answers a body of {bytes} bytes
  GET /fanout       calls the upstream (UPSTREAM_PORT) twice, one after the other: on the
                    shared ClientSession's pooled keep-alive connections, then through a
                    connector that opens a new connection per call (force_close); the paths
                    carry the request id
  anything else     404 from the handler below (so it has a truth line too)"""
import asyncio
import os
import sys

import aiohttp
from aiohttp import web

from truth import HandlerClock, burn_us

UPSTREAM = f"http://127.0.0.1:{os.environ.get('UPSTREAM_PORT', '0')}"


async def work(request):
    clock = HandlerClock(request.headers.get("X-Request-Id"))
    burn_us(int(request.match_info["us"]))
    res = web.Response(text="worked\n")
    clock.finish()
    return res


async def size(request):
    clock = HandlerClock(request.headers.get("X-Request-Id"))
    res = web.Response(body=b"x" * int(request.match_info["bytes"]), content_type="text/plain")
    clock.finish()
    return res


async def fetch_text(session, path, clock):
    """One GET; the clock runs only while this coroutine holds the thread. Records in the
    clock's deps whether the call opened its connection (aiohttp's connection tracing)."""
    dep = {"path": path, "new_connection": None}
    clock.deps.append(dep)
    clock.pause()
    async with session.get(UPSTREAM + path, trace_request_ctx=dep) as r:
        clock.resume()
        clock.pause()
        body = await r.text()
        clock.resume()
        return r.status, body


async def fanout(request):
    request_id = request.headers.get("X-Request-Id")
    clock = HandlerClock(request_id)
    app = request.app
    clock.deps = []
    pooled, _ = await fetch_text(app["pooled"], f"/dep/{request_id}/pooled", clock)
    fresh, _ = await fetch_text(app["fresh"], f"/dep/{request_id}/new", clock)
    res = web.Response(text=f"fanout {pooled} {fresh}\n")
    clock.finish()
    return res


async def not_found(request):
    clock = HandlerClock(request.headers.get("X-Request-Id"))
    res = web.Response(status=404, text="not here\n")
    clock.finish()
    return res


async def _opened(session, ctx, params):
    ctx.trace_request_ctx["new_connection"] = True


async def _reused(session, ctx, params):
    ctx.trace_request_ctx["new_connection"] = False


def connection_tracing():
    tc = aiohttp.TraceConfig()
    tc.on_connection_create_end.append(_opened)
    tc.on_connection_reuseconn.append(_reused)
    return [tc]


async def clients(app):
    app["pooled"] = aiohttp.ClientSession(trace_configs=connection_tracing())
    app["fresh"] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True), trace_configs=connection_tracing()
    )
    yield
    await app["pooled"].close()
    await app["fresh"].close()


async def main(port):
    app = web.Application()
    app.cleanup_ctx.append(clients)
    app.router.add_get("/work/{us}", work)
    app.router.add_get("/size/{bytes}", size)
    app.router.add_get("/fanout", fanout)
    app.router.add_route("*", "/{tail:.*}", not_found)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=60)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"LISTENING {runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
