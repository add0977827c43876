"""Shared fixtures: keys, a token issuer, bodies as Graph sends them, and the ../shared rule."""

import json
import os
from pathlib import Path

import pytest

from msgraph_notify import KeyRing, Receiver
from msgraph_notify.testing import GraphEncryptor, TokenIssuer, self_signed_certificate

WORKSPACE = Path(__file__).resolve().parents[2]
APP_ID = "11111111-aaaa-4bbb-8ccc-000000000001"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "0d2c1f5e-1111-4222-8333-444455556666"
CERT_ID = "cert-1"
CLIENT_STATE = "the-client-state-secret"


def shared_dir():
    """THE rule of test-support's shared.rs: MSGRAPH_NOTIFY_SHARED (relative to the workspace
    root), else <workspace>/../shared; there when it holds vectors/. Absent: skip, except under
    CI=true, where absence fails."""
    named = os.environ.get("MSGRAPH_NOTIFY_SHARED")
    folder = WORKSPACE / named if named else WORKSPACE.parent / "shared"
    if (folder / "vectors").is_dir():
        return folder
    if os.environ.get("CI") == "true":
        pytest.fail(f"the shared test data is missing at {folder} (CI=true)")
    pytest.skip(f"the shared test data is absent at {folder} (set MSGRAPH_NOTIFY_SHARED)")


@pytest.fixture(scope="session")
def key_and_cert():
    return self_signed_certificate("receiver.test")


@pytest.fixture(scope="session")
def issuer():
    return TokenIssuer()


@pytest.fixture(scope="session")
def encryptor(key_and_cert):
    return GraphEncryptor(key_and_cert[1], CERT_ID)


@pytest.fixture()
def keys(key_and_cert):
    ring = KeyRing()
    ring.add(CERT_ID, key_and_cert[0], certificate=key_and_cert[1])
    return ring


@pytest.fixture()
def receiver(keys, issuer):
    return Receiver(keys, [APP_ID], client_state=CLIENT_STATE, signing_keys=issuer.signing_keys())


PRESENCE = {
    "@odata.type": "#Microsoft.Graph.presence",
    "id": "66825e03-7ef5-42da-9069-724602c31f6b",
    "availability": "Busy",
    "activity": "InACall",
}


def body(items, tokens):
    doc = {"value": items}
    if tokens is not None:
        doc["validationTokens"] = tokens
    return json.dumps(doc).encode()


def presence_item(encryptor, tenant=TENANT, client_state=CLIENT_STATE, resource=PRESENCE):
    return encryptor.notification(resource, tenant, "communications/presences/u1", client_state=client_state)
