"""No reference leak over 100,000 calls: Python's traced memory (tracemalloc) and the process's
resident set (RSS, which also sees the Rust side) stay flat once warmed up."""

import gc
import tracemalloc

import msgraph_notify as m

from conftest import APP_ID, CLIENT_STATE, TENANT, body, presence_item

CALLS = 100_000


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_no_leak_over_100000_calls(keys, encryptor, issuer):
    receiver = m.Receiver(keys, [APP_ID], client_state=CLIENT_STATE,
                          signing_keys=issuer.signing_keys(), replay=False)
    token = issuer.token(APP_ID, TENANT)
    encrypted = body([presence_item(encryptor)], [token])
    # The cheap paths (no RSA) run 100,000 times; the decrypting path every 50th call.
    lifecycle = body([{"subscriptionId": "s", "tenantId": TENANT, "clientState": CLIENT_STATE,
                       "lifecycleEvent": "missed"},
                      {"subscriptionId": "s", "tenantId": TENANT, "clientState": "wrong"}], None)
    flawed = body([presence_item(encryptor)], [issuer.flawed_token(APP_ID, TENANT, "expired")])

    def one(n):
        k = n % 50
        if k == 0:
            item = receiver.receive(encrypted).items[0]
            assert item.status == "decrypted"
            item.to_dict(), item.data, item.plaintext
        elif k % 4 == 1:
            for item in receiver.receive(lifecycle).items:
                item.to_dict(), item.error_type
        elif k % 4 == 2:
            try:
                receiver.receive(b'{"value": 1}')
            except m.MalformedError:
                pass
        elif k % 4 == 3:
            receiver.receive(flawed).items[0].to_dict()
        else:
            assert receiver.receive(b"", "validationToken=abc").handshake == "abc"

    for n in range(10_000):  # warm up: caches, allocator pools
        one(n)
    gc.collect()
    tracemalloc.start()
    rss_before = rss_bytes()
    traced_before, _ = tracemalloc.get_traced_memory()
    for n in range(CALLS):
        one(n)
    gc.collect()
    traced_after, _ = tracemalloc.get_traced_memory()
    rss_after = rss_bytes()
    tracemalloc.stop()
    # A leak of one object per call would be several MB here.
    assert traced_after - traced_before < 256 * 1024, traced_after - traced_before
    assert rss_after - rss_before < 8 * 1024 * 1024, rss_after - rss_before
