"""The examples run: the FastAPI receiver under uvicorn answers the handshake and decrypts a
notification made by the test kit, over a real socket (httpx); the http.server one too."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import APP_ID, CERT_ID, CLIENT_STATE, TENANT, body, presence_item

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(tmp_path, key_and_cert, issuer):
    (tmp_path / "key.pem").write_bytes(key_and_cert[0])
    (tmp_path / "cert.pem").write_bytes(key_and_cert[1])
    (tmp_path / "jwks.json").write_text(issuer.jwks())
    return {**os.environ,
            "MSGRAPH_NOTIFY_KEY": str(tmp_path / "key.pem"),
            "MSGRAPH_NOTIFY_CERT": str(tmp_path / "cert.pem"),
            "MSGRAPH_NOTIFY_CERT_ID": CERT_ID,
            "MSGRAPH_NOTIFY_APP_ID": APP_ID,
            "MSGRAPH_NOTIFY_CLIENT_STATE": CLIENT_STATE,
            "MSGRAPH_NOTIFY_JWKS": str(tmp_path / "jwks.json"),
            "PYTHONUNBUFFERED": "1"}


def serve(command, env, port, path):
    proc = subprocess.Popen(command, cwd=EXAMPLES, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}{path}?validationToken=ready", timeout=1)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read())
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the example did not start")


def exercise(url, proc, encryptor, issuer):
    # The handshake: 200, text/plain, the decoded token.
    r = httpx.post(url, params={"validationToken": "Validation: ok 1+1"})
    assert r.status_code == 200 and r.text == "Validation: ok 1+1"
    assert r.headers["content-type"].startswith("text/plain")
    # A notification: 202 at once; the item processed off the request (printed by the worker).
    sent = presence_item(encryptor, resource={"@odata.type": "#Microsoft.Graph.presence",
                                              "id": "u1", "availability": "Away"})
    start = time.monotonic()
    r = httpx.post(url, content=body([sent], [issuer.token(APP_ID, TENANT)]),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 202 and time.monotonic() - start < 3
    line = json.loads(proc.stdout.readline())
    assert line["status"] == "decrypted" and line["tenantId"] == TENANT
    assert line["data"] == {"@odata.type": "#Microsoft.Graph.presence", "id": "u1", "availability": "Away"}
    # A forged token: still 202, the item rejected.
    r = httpx.post(url, content=body([presence_item(encryptor)],
                                     [issuer.flawed_token(APP_ID, TENANT, "foreign_signature")]))
    assert r.status_code == 202
    line = json.loads(proc.stdout.readline())
    assert line["status"] == "rejected" and "validation token" in line["error"]
    # A body that is not a notification collection: 400 with the reason.
    r = httpx.post(url, content=b"not json")
    assert r.status_code == 400 and "invalid" in r.text


def test_fastapi_example_over_a_real_socket(tmp_path, key_and_cert, issuer, encryptor):
    port = free_port()
    proc = serve([sys.executable, "-m", "uvicorn", "fastapi_receiver:app", "--host", "127.0.0.1",
                  "--port", str(port), "--log-level", "warning"],
                 env_for(tmp_path, key_and_cert, issuer), port, "/notifications")
    try:
        exercise(f"http://127.0.0.1:{port}/notifications", proc, encryptor, issuer)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_http_server_example_over_a_real_socket(tmp_path, key_and_cert, issuer, encryptor):
    port = free_port()
    proc = serve([sys.executable, "http_server_receiver.py", str(port)],
                 env_for(tmp_path, key_and_cert, issuer), port, "/")
    try:
        exercise(f"http://127.0.0.1:{port}/", proc, encryptor, issuer)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_azure_function_example(tmp_path, key_and_cert, issuer, encryptor, monkeypatch):
    """The function's code with the Functions library's own request and output objects (the
    Functions host itself is not run here)."""
    func = pytest.importorskip("azure.functions")
    for name, value in env_for(tmp_path, key_and_cert, issuer).items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(EXAMPLES / "azure_function"))
    sys.modules.pop("function_app", None)
    import function_app

    handlers = {f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()}

    class Out:
        value = None

        def set(self, value):
            self.value = value

    url = "https://example.azurewebsites.net/api/notifications"
    out = Out()
    r = handlers["notifications"](func.HttpRequest("POST", url + "?validationToken=Validation%3A+ok",
                                                   body=b""), out)
    assert r.status_code == 200 and r.get_body() == b"Validation: ok" and out.value is None
    payload = body([presence_item(encryptor)], [issuer.token(APP_ID, TENANT)])
    r = handlers["notifications"](func.HttpRequest("POST", url, body=payload), out)
    assert r.status_code == 202
    [line] = [json.loads(m) for m in out.value]
    assert line["status"] == "decrypted" and line["resourceKind"] == "presence"
    r = handlers["notifications"](func.HttpRequest("POST", url, body=b"not json"), Out())
    assert r.status_code == 400
    # The queue-triggered function takes the line the HTTP function wrote.
    handlers["process"](func.QueueMessage(body=out.value[0].encode()))
