"""The receiver: handshake, tokens item by item, clientState, replay, whole-body errors."""

import asyncio
import json
import os
import random

import pytest

import msgraph_notify as m
from msgraph_notify import Receiver

from msgraph_notify.testing import self_signed_certificate

from conftest import (APP_ID, CLIENT_STATE, OTHER_TENANT, PRESENCE, TENANT, body,
                      presence_item)


def test_handshake_echoes_the_decoded_token(receiver):
    reply = receiver.receive(b"", "validationToken=Validation%3A+Testing+client+application+reachability")
    assert reply.handshake == "Validation: Testing client application reachability"
    assert reply.status_code == 200 and reply.items == []
    assert receiver.receive(b"", "?validationToken=a%2Fb").handshake == "a/b"
    assert Receiver.handshake_token("other=1") is None


def test_decrypts_with_a_valid_token(receiver, encryptor, issuer):
    for version in ("1.0", "2.0"):
        item = presence_item(encryptor, resource={**PRESENCE, "id": version})
        reply = receiver.receive(body([item], [issuer.token(APP_ID, TENANT, version)]))
        assert reply.handshake is None and reply.status_code == 202
        [got] = reply.items
        assert got.status == "decrypted", got.error
        assert got.resource_kind == "presence"
        assert got.data == {**PRESENCE, "id": version}
        assert json.loads(got.plaintext) == got.data
        assert got.tenant_id == TENANT and got.subscription_id == item["subscriptionId"]
        assert got.change_type == "updated" and got.resource == "communications/presences/u1"
        assert got.error is None and not got.rejected
        line = got.to_dict()
        assert line["status"] == "decrypted" and line["data"] == got.data and line["index"] == 0


@pytest.mark.parametrize("flaw", ["foreign_signature", "expired", "alg_none", "unknown_kid",
                                  "wrong_publisher", "other_tenants_issuer", "not_yet_valid"])
def test_flawed_tokens_reject_their_items_only(receiver, encryptor, issuer, flaw):
    # Tenant A's token is flawed; tenant B's is good: B's item decrypts, A's is rejected.
    a = presence_item(encryptor, tenant=TENANT)
    b = presence_item(encryptor, tenant=OTHER_TENANT)
    tokens = [issuer.flawed_token(APP_ID, TENANT, flaw), issuer.token(APP_ID, OTHER_TENANT)]
    first, second = receiver.receive(body([a, b], tokens)).items
    assert first.status == "rejected" and first.error_type is m.TokenError
    assert "validation token" in first.error
    assert first.to_dict()["error"] == first.error
    assert first.data is None and first.plaintext is None
    assert second.status == "decrypted", second.error


def test_wrong_tenant_token_covers_nothing(receiver, encryptor, issuer):
    item = presence_item(encryptor, tenant=TENANT)
    [got] = receiver.receive(body([item], [issuer.token(APP_ID, OTHER_TENANT)])).items
    assert got.status == "rejected" and got.error_type is m.TokenError
    assert TENANT in got.error


def test_token_of_another_app_covers_nothing(receiver, encryptor, issuer):
    item = presence_item(encryptor)
    [got] = receiver.receive(body([item], [issuer.token("another-app", TENANT)])).items
    assert got.status == "rejected" and got.error_type is m.TokenError


def test_missing_tokens_reject_encrypted_items(receiver, encryptor):
    item = presence_item(encryptor)
    basic = {k: v for k, v in item.items() if k not in ("encryptedContent", "resourceData")}
    for tokens in (None, []):
        enc, plain = receiver.receive(body([item, basic], tokens)).items
        assert enc.status == "rejected" and enc.error_type is m.TokenError
        assert "no validation tokens" in enc.error
        assert plain.status == "basic"  # nothing to verify beyond clientState


def test_client_state_checked_item_by_item(receiver, encryptor, issuer):
    good = presence_item(encryptor)
    wrong = presence_item(encryptor, client_state="guess")
    missing = presence_item(encryptor, client_state=None)
    items = receiver.receive(body([good, wrong, missing], [issuer.token(APP_ID, TENANT)])).items
    assert [i.status for i in items] == ["decrypted", "rejected", "rejected"]
    assert items[1].error_type is m.ClientStateError and items[2].error_type is m.ClientStateError


def test_replay_is_reported_as_duplicate(receiver, encryptor, issuer):
    payload = body([presence_item(encryptor)], [issuer.token(APP_ID, TENANT)])
    assert receiver.receive(payload).items[0].status == "decrypted"
    again = receiver.receive(payload).items[0]
    assert again.status == "rejected" and again.error_type is m.DuplicateError
    assert not again.transient


def test_replay_off_accepts_again(keys, encryptor, issuer):
    r = Receiver(keys, APP_ID, client_state=CLIENT_STATE, signing_keys=issuer.signing_keys(), replay=False)
    payload = body([presence_item(encryptor)], [issuer.token(APP_ID, TENANT)])
    assert [r.receive(payload).items[0].status for _ in range(2)] == ["decrypted", "decrypted"]


def test_altered_ciphertext_fails_verification(receiver, encryptor, issuer):
    item = presence_item(encryptor)
    data = item["encryptedContent"]["data"]
    item["encryptedContent"]["data"] = ("B" if data[0] == "A" else "A") + data[1:]
    [got] = receiver.receive(body([item], [issuer.token(APP_ID, TENANT)])).items
    assert got.status == "rejected" and got.error_type is m.VerificationError


def test_unknown_certificate_id(receiver, issuer, key_and_cert):
    from msgraph_notify.testing import GraphEncryptor
    item = presence_item(GraphEncryptor(key_and_cert[1], "not-registered"))
    [got] = receiver.receive(body([item], [issuer.token(APP_ID, TENANT)])).items
    assert got.error_type is m.KeySelectionError and "not-registered" in got.error


def test_lifecycle_items(receiver):
    life = {"subscriptionId": "s1", "tenantId": TENANT, "clientState": CLIENT_STATE,
            "lifecycleEvent": "reauthorizationRequired",
            "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z"}
    [got] = receiver.receive(body([life], None)).items
    assert got.status == "lifecycle" and got.lifecycle_event == "reauthorizationRequired"
    assert got.to_dict()["lifecycleEvent"] == "reauthorizationRequired"


@pytest.mark.parametrize("payload,exc", [
    (b"not json", m.MalformedError),
    (b"{}", m.MalformedError),
    (b'{"value": 3}', m.MalformedError),
    (b"[1, 2]", m.MalformedError),
    (b"", m.MalformedError),
    (b'{"value": [' + b"{}," * 1000 + b"{}]}", m.TooManyError),
    (b" " * (1 << 20) + b"{}", m.BodyTooLargeError),
    (b"[" * 100_000, m.MalformedError),
    (b'{"value": [' + b"[" * 100_000, m.MalformedError),
    (b'{"value": [{"subscriptionId": "' + b"\\u00" * 1000 + b'"}]}', m.MalformedError),
    (b"\xff\xfe{}", m.MalformedError),
])
def test_unusable_body_raises(receiver, payload, exc):
    with pytest.raises(exc) as caught:
        receiver.receive(payload)
    assert isinstance(caught.value, m.Error)
    assert str(caught.value)  # the crate's message


def test_random_bytes_never_crash(receiver, encryptor, issuer):
    good = body([presence_item(encryptor)], [issuer.token(APP_ID, TENANT)])
    rng = random.Random(24)
    for n in range(3000):
        if n % 2:
            mutated = bytearray(good)
            for _ in range(rng.randint(1, 8)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            payload = bytes(mutated)
        else:
            payload = os.urandom(rng.randint(0, 300))
        try:
            reply = receiver.receive(payload)
        except m.Error:
            continue
        for item in reply.items:
            item.to_dict()


def test_exceptions_derive_from_error():
    names = [n for n in m.__all__ if n.endswith("Error")]
    assert len(names) == 16
    for name in names:
        assert issubclass(getattr(m, name), m.Error)
    assert issubclass(m.Error, Exception)


def test_options_checked(keys, issuer):
    with pytest.raises(m.MalformedError):
        Receiver(keys, [], signing_keys=issuer.signing_keys())
    with pytest.raises(m.MalformedError):
        Receiver(keys, [APP_ID], client_state="  ", signing_keys=issuer.signing_keys())


def test_tenants_restrict_tokens(keys, encryptor, issuer):
    r = Receiver(keys, [APP_ID], client_state=CLIENT_STATE, signing_keys=issuer.signing_keys(),
                 tenants=[OTHER_TENANT])
    [got] = r.receive(body([presence_item(encryptor)], [issuer.token(APP_ID, TENANT)])).items
    assert got.status == "rejected" and got.error_type is m.TokenError


def test_areceive_runs_off_the_loop(receiver, encryptor, issuer):
    payload = body([presence_item(encryptor)], [issuer.token(APP_ID, TENANT)])

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        reply = await receiver.areceive(payload)
        handshake = await receiver.areceive(b"", "validationToken=x")
        task.cancel()
        return reply, handshake, ticks

    reply, handshake, ticks = asyncio.run(main())
    assert reply.items[0].status == "decrypted" and handshake.handshake == "x"
    assert ticks > 0  # the loop kept running while the item was decrypted


def test_keyring_rules(key_and_cert):
    ring = m.KeyRing()
    ring.add("a", key_and_cert[0], certificate=key_and_cert[1])
    with pytest.raises(m.KeyLoadError):
        ring.add("a", key_and_cert[0], certificate=key_and_cert[1])  # the same certificate twice
    with pytest.raises(m.KeyLoadError):
        ring.add("b", b"not a key")
    other_key, _ = self_signed_certificate()
    with pytest.raises(m.CertificateError):
        ring.add("c", other_key, certificate=key_and_cert[1])
    with pytest.raises(TypeError):
        ring.add("d", 42)
    assert len(ring) == 1 and ring.remove("a") and len(ring) == 0
