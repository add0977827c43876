"""A Graph change-notification endpoint on the standard library's http.server.

Each POST is verified and decrypted (the GIL released, so request threads run in parallel),
answered (200 with the handshake token, or 202), and its items handed to a worker thread.
Settings: see settings.py.

    MSGRAPH_NOTIFY_KEY=graph.pfx ... python http_server_receiver.py 8000
"""

import json
import queue
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from msgraph_notify import Error

from settings import receiver_from_env

MAX_BODY = 1 << 20
receiver = receiver_from_env()
items: "queue.Queue" = queue.Queue()


def worker() -> None:
    while True:
        item = items.get()
        print(json.dumps(item.to_dict()), flush=True)  # your work on the item


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self.answer(413, b"body too large")
        body = self.rfile.read(length)
        try:
            reply = receiver.receive(body, urlsplit(self.path).query or None)
        except Error as e:
            return self.answer(400, str(e).encode())
        if reply.handshake is not None:
            return self.answer(200, reply.handshake.encode())
        self.answer(202, b"")
        for item in reply.items:
            items.put(item)

    def answer(self, status: int, text: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    threading.Thread(target=worker, daemon=True).start()
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
