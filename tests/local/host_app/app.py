"""The functions the local host's tests drive: HTTP (sync and async), a queue trigger, a timer.

What the queue and timer functions see is recorded in module-level lists, read by the tests (the host runs
the functions in the test's own process).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

received: list[tuple[str, bytes, int | None]] = []  # (queue setting's queue name, body, dequeue count)
chained: list[str] = []
ticks: list[bool] = []  # past_due of each timer invocation
_lock = threading.Lock()


@app.route(route="items/{category:alpha}/{id:int}", methods=["GET", "POST"])
def item(req: func.HttpRequest) -> func.HttpResponse:
    """Echoes what the request carried; several values of one response header."""
    document = {
        "method": req.method,
        "url": req.url,
        "route": dict(req.route_params),
        "params": dict(req.params),
        "header": req.headers.get("x-test"),
        "body": req.get_body().decode("utf-8"),
    }
    response = func.HttpResponse(
        json.dumps(document), status_code=201 if req.method == "POST" else 200, mimetype="application/json"
    )
    response.headers.add("X-Multi", "one")
    response.headers.add("X-Multi", "two")
    return response


@app.route(route="items/{category}/special", methods=["GET"])
def special(req: func.HttpRequest) -> str:
    """A literal segment beats a parameter; a str return is a 200 text/plain response."""
    return f"special {req.route_params['category']}"


@app.route(route="files/{*path}", methods=["GET"])
def files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params.get("path", ""), mimetype="text/plain")


@app.function_name("get_only")
@app.route(route="readonly", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def readonly(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(b"\x00\x01binary", mimetype="application/octet-stream")


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("this function always fails")


@app.route(route="slow", methods=["GET"])
async def slow(req: func.HttpRequest) -> func.HttpResponse:
    """Async: 20 of these at once take about as long as one."""
    delay = float(req.params.get("delay", "0.3"))
    await asyncio.sleep(delay)
    return func.HttpResponse(json.dumps({"thread": threading.current_thread().name, "slept": delay}))


@app.route(route="blocking", methods=["GET"])
def blocking(req: func.HttpRequest) -> func.HttpResponse:
    """Sync: runs on the request's own thread, so concurrent requests overlap too."""
    time.sleep(0.3)
    return func.HttpResponse("done")


@app.route(route="enqueue", methods=["POST"])
@app.queue_output(arg_name="out", queue_name="%DEVHOST_QUEUE%", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    """A queue output binding: the body goes to the triggered queue."""
    out.set(req.get_body().decode("utf-8"))
    return func.HttpResponse(status_code=202)


@app.queue_trigger(arg_name="msg", queue_name="%DEVHOST_QUEUE%", connection="AzureWebJobsStorage")
def consume(msg: func.QueueMessage) -> None:
    body = msg.get_body()
    with _lock:
        received.append((msg.id or "", body, msg.dequeue_count))
    if body == b"fail":
        raise ValueError("told to fail")


@app.queue_trigger(arg_name="text", queue_name="%DEVHOST_CHAIN_QUEUE%", connection="AzureWebJobsStorage")
async def chain(text: str) -> None:
    """Async, bound as str."""
    await asyncio.sleep(0)
    with _lock:
        chained.append(text)


@app.timer_trigger(arg_name="timer", schedule="* * * * * *", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    with _lock:
        ticks.append(timer.past_due)
