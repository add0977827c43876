"""The docs' samples (../shared/samples): decrypted resources encrypted by the test kit come
back exact; lifecycle and basic collections keep their outcome; the docs' encrypted examples
(placeholders, not decryptable) are rejected item by item, never raised."""

import json

import pytest

from msgraph_notify import KeyRing, Receiver

from conftest import APP_ID, CERT_ID, TENANT, body, shared_dir

RESOURCES = [
    ("presence/presence-decrypted-resource.json", "communications/presences/u1", "presence"),
    ("chatmessage/chatmessage-decrypted-resource.json", "chats('19:x')/messages('1')", "chatMessage"),
    ("outlook/outlook-message-decrypted-resource.json", "Users('722effaf')/messages('AAMkAGUwNjQ4ZjIxLTQ3Y2Y8AAA=')", None),
    ("strict/onlinemeeting-decrypted-callStarted.strict.json", "communications/onlineMeetings(joinWebUrl='x')/meetingCallEvents", None),
    ("strict/onlinemeeting-decrypted-callEnded.strict.json", "communications/onlineMeetings(joinWebUrl='x')/meetingCallEvents", None),
]


def samples():
    return shared_dir() / "samples"


@pytest.mark.parametrize("path,resource_path,kind", RESOURCES)
def test_decrypted_resources_round_trip(receiver, encryptor, issuer, path, resource_path, kind):
    resource = json.loads((samples() / path).read_bytes())
    item = encryptor.notification(resource, TENANT, resource_path, client_state="the-client-state-secret")
    [got] = receiver.receive(body([item], [issuer.token(APP_ID, TENANT)])).items
    assert got.status == "decrypted", got.error
    assert got.data == resource
    assert json.loads(got.plaintext) == resource
    if kind:
        assert got.resource_kind == kind
    assert got.to_dict()["data"] == resource


def test_lifecycle_and_basic_samples(key_and_cert):
    keys = KeyRing()
    keys.add(CERT_ID, key_and_cert[0], certificate=key_and_cert[1])
    receiver = Receiver(keys, [], insecure_skip_token_validation=True, replay=False)
    for name in ["lifecycle/lifecycle-missed.json", "lifecycle/lifecycle-reauthorizationRequired.json",
                 "lifecycle/lifecycle-subscriptionRemoved.json"]:
        doc = json.loads((samples() / name).read_bytes())
        items = receiver.receive((samples() / name).read_bytes()).items
        assert [i.status for i in items] == ["lifecycle"] * len(doc["value"]), name
        assert items[0].lifecycle_event == doc["value"][0]["lifecycleEvent"]
    basic = receiver.receive((samples() / "collection/basic-outlook-message-notification.json").read_bytes())
    assert {i.status for i in basic.items} == {"basic"}


def test_docs_encrypted_examples_are_rejected_item_by_item(receiver):
    for name in ["presence/presence-rich-notification-encrypted.json",
                 "chatmessage/chatmessage-rich-notification-chat-encrypted.json",
                 "onlinemeeting/onlinemeeting-meetingcallevents-rich-notification-encrypted.json",
                 "strict/outlook-message-rich-notification-encrypted.strict.json"]:
        reply = receiver.receive((samples() / name).read_bytes())
        assert reply.items, name
        for item in reply.items:
            assert item.status == "rejected", name
            assert item.error and item.to_dict()["error"] == item.error
