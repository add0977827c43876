"""Graph's one real encrypted notification (../shared/vectors/dotnet-sdk) through the package,
from each of its key files; and the item's line is the one `msgraph-notify decrypt` prints."""

import json
import os
import shutil
import subprocess

import pytest

from msgraph_notify import KeyLoadError, KeyRing, Receiver

from conftest import WORKSPACE, shared_dir

CERT_ID = "custom-id-for-testing"
PASSWORD = "rich"


def vector():
    return shared_dir() / "vectors" / "dotnet-sdk"


def key_files():
    d = vector()
    return {
        "pfx (RC2/3DES)": dict(source=d / "certificate.pfx", password=PASSWORD),
        "pfx bytes (AES-256)": dict(source=(d / "certificate.reencoded-aes256.pfx").read_bytes(), password=PASSWORD),
        "pkcs8 pem + cert pem": dict(source=d / "private_key.pem", certificate=d / "certificate.pem"),
        "pkcs1 pem + cert der": dict(source=str(d / "private_key.pkcs1.pem"), certificate=(d / "certificate.der").read_bytes()),
        "pkcs8 pem alone": dict(source=(d / "private_key.pem").read_bytes()),
    }


def receive_vector(ring):
    receiver = Receiver(ring, [], insecure_skip_token_validation=True, replay=False)
    body = (vector() / "notification-collection.CONSTRUCTED.json").read_bytes()
    reply = receiver.receive(body)
    assert reply.handshake is None and reply.status_code == 202
    assert len(reply.items) == 1
    return reply.items[0]


@pytest.mark.parametrize("name", ["pfx (RC2/3DES)", "pfx bytes (AES-256)", "pkcs8 pem + cert pem",
                                  "pkcs1 pem + cert der", "pkcs8 pem alone"])
def test_real_vector_decrypts_to_its_exact_plaintext(name):
    ring = KeyRing()
    ring.add(CERT_ID, **key_files()[name])
    item = receive_vector(ring)
    expected = (vector() / "decrypted.json").read_bytes()
    assert item.status == "decrypted", item.error
    assert item.plaintext == expected
    assert item.data == json.loads(expected)
    assert item.data["body"]["content"] == "Hello World"
    assert item.data["etag"] == "1625126194597"
    assert item.resource_kind == "chatMessage"
    assert item.error is None and item.error_type is None


def test_wrong_pfx_password_raises_key_load_error():
    ring = KeyRing()
    with pytest.raises(KeyLoadError):
        ring.add(CERT_ID, vector() / "certificate.pfx", password="not-rich")
    assert len(ring) == 0


def test_to_dict_is_the_line_decrypt_prints():
    ring = KeyRing()
    ring.add(CERT_ID, vector() / "certificate.pfx", password=PASSWORD)
    item = receive_vector(ring)
    collection = json.loads((vector() / "notification-collection.CONSTRUCTED.json").read_bytes())
    sent = collection["value"][0]
    expected = {
        "index": 0,
        "status": "decrypted",
        "subscriptionId": sent["subscriptionId"],
        "tenantId": sent["tenantId"],
        "changeType": sent["changeType"],
        "resource": sent["resource"],
        "resourceKind": "chatMessage",
        "data": json.loads((vector() / "decrypted.json").read_bytes()),
    }
    assert item.to_dict() == expected
    # The command itself, when it is built: its line for this body is the same object.
    cli = shutil.which("msgraph-notify") or next(
        (p for p in [os.path.join(os.environ.get("CARGO_TARGET_DIR", WORKSPACE / "target"), d, "msgraph-notify")
                     for d in ("debug", "release")] if os.path.exists(p)), None)
    if cli is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the msgraph-notify command is not built (CI=true): cargo build -p msgraph-notify-cli")
        pytest.skip("the msgraph-notify command is not built; the expected line above was checked")
    out = subprocess.run(
        [cli, "decrypt", "--key", f"{CERT_ID}={vector() / 'certificate.pfx'}", "--password", PASSWORD,
         "--insecure-skip-tokens", str(vector() / "notification-collection.CONSTRUCTED.json")],
        capture_output=True, check=False, timeout=60,
    )
    assert out.returncode == 0, out.stderr.decode()
    lines = out.stdout.decode().splitlines()
    assert [json.loads(line) for line in lines] == [item.to_dict()]
