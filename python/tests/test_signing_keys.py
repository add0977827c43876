"""SigningKeys: from a JWKS document, and fetched over HTTP from a local server (a real socket),
including a refetch when a token names a key not yet seen (rotation)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import msgraph_notify as m
from msgraph_notify import Receiver, SigningKeys
from msgraph_notify.testing import TokenIssuer

from conftest import APP_ID, CLIENT_STATE, TENANT, body, presence_item


def test_from_jwks_accepts_text_bytes_and_dict(issuer):
    jwks = issuer.jwks()
    for doc in (jwks, jwks.encode(), json.loads(jwks)):
        keys = SigningKeys.from_jwks(doc)
        assert issuer.kid in keys and keys.kids() == [issuer.kid] and len(keys) == 1
    with pytest.raises(m.MalformedError):
        SigningKeys.from_jwks("{not json")


class JwksServer:
    """Serves whatever JWKS `self.document` holds at /keys, on 127.0.0.1."""

    def __init__(self, document):
        self.document = document
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                data = outer.document.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/keys"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_fetch_and_refetch_on_rotation(keys, encryptor, issuer):
    server = JwksServer(issuer.jwks())
    try:
        fetched = SigningKeys.fetch(jwks_url=server.url, min_refresh_interval=0.0)
        assert issuer.kid in fetched and server.hits == 1
        receiver = Receiver(keys, [APP_ID], client_state=CLIENT_STATE, signing_keys=fetched)
        payload = body([presence_item(encryptor)], [issuer.token(APP_ID, TENANT)])
        assert receiver.receive(payload).items[0].status == "decrypted"
        # Microsoft rotates: a token signed by a new key; the receiver fetches it, once.
        rotated = TokenIssuer()
        server.document = rotated.jwks()
        payload = body([presence_item(encryptor)], [rotated.token(APP_ID, TENANT)])
        got = receiver.receive(payload).items[0]
        assert got.status == "decrypted", got.error
        assert rotated.kid in fetched and server.hits == 2
    finally:
        server.close()


def test_fetch_failure_raises_fetch_error():
    server = JwksServer("")
    url = server.url
    server.close()
    with pytest.raises(m.FetchError) as caught:
        SigningKeys.fetch(jwks_url=url, timeout=2.0)
    assert isinstance(caught.value, m.Error)
