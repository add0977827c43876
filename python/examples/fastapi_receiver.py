"""A Graph change-notification endpoint on FastAPI.

The handshake is answered at once; a notification POST is verified and decrypted off the event
loop (``areceive``), answered 202 (well within Graph's 3 seconds), and its items are processed
by a background worker, off the request. Settings: see settings.py.

    MSGRAPH_NOTIFY_KEY=graph.pfx ... uvicorn fastapi_receiver:app --port 8000
"""

import asyncio
import json
import sys
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from msgraph_notify import Error, Item

from settings import receiver_from_env


def process(item: Item) -> None:
    """Your work on one item (here: print the line `msgraph-notify decrypt` prints)."""
    print(json.dumps(item.to_dict()), flush=True)


async def worker(queue: "asyncio.Queue[Item]") -> None:
    while True:
        item = await queue.get()
        try:
            # Slow work goes to a thread; the loop keeps answering Graph.
            await asyncio.to_thread(process, item)
        except Exception as e:  # one item's failure does not stop the worker
            print(f"processing item {item.index} failed: {e}", file=sys.stderr, flush=True)
        finally:
            queue.task_done()


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.receiver = receiver_from_env()
    app.state.queue = asyncio.Queue()
    task = asyncio.create_task(worker(app.state.queue))
    yield
    task.cancel()


app = FastAPI(lifespan=lifespan)


@app.post("/notifications")
async def notifications(request: Request) -> Response:
    body = await request.body()
    try:
        reply = await request.app.state.receiver.areceive(body, request.url.query or None)
    except Error as e:  # the body as a whole is unusable
        return Response(str(e), status_code=400, media_type="text/plain")
    if reply.handshake is not None:
        return Response(reply.handshake, status_code=200, media_type="text/plain")
    for item in reply.items:
        if item.transient:
            # The key or the replay store was out of reach: the item was not judged. A service
            # should keep the body and retry it; this example reports it.
            print(f"item {item.index} not judged: {item.error}", file=sys.stderr, flush=True)
        request.app.state.queue.put_nowait(item)
    return Response(status_code=202)
