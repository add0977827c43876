"""receive releases the GIL: Python runs while it works, and two threads decrypt about twice as
fast as one."""

import json
import os
import threading
import time
import warnings

import pytest

import msgraph_notify as m

from conftest import APP_ID, CLIENT_STATE, TENANT, body, presence_item


def cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@pytest.fixture()
def fast_receiver(keys, issuer):
    return m.Receiver(keys, [APP_ID], client_state=CLIENT_STATE,
                      signing_keys=issuer.signing_keys(), replay=False)


def spins_during(call):
    """How often this thread counts while another thread runs `call()`, from just before the
    call until the other thread sets `done` after it."""
    started, done = threading.Event(), threading.Event()
    spins = 0

    def work():
        started.set()
        call()
        done.set()

    t = threading.Thread(target=work)
    t.start()
    started.wait()
    while not done.is_set():
        spins += 1
    t.join()
    return spins


def test_python_runs_while_receive_works(fast_receiver, encryptor, issuer):
    payload = body([presence_item(encryptor) for _ in range(300)], [issuer.token(APP_ID, TENANT)])
    received = []
    spins = spins_during(lambda: received.extend(fast_receiver.receive(payload) for _ in range(4)))
    assert all(i.status == "decrypted" for reply in received for i in reply.items)
    # The control: a call that holds the GIL throughout (json.loads of a large document). This
    # thread then counts only around the call's edges (switch intervals of 5 ms, about 350,000
    # counts here, whatever the call's length); with the GIL released it counts through the whole
    # of the four receives (about 5 million).
    document = json.dumps([{"a": "x" * 50}] * 200_000)
    held = spins_during(lambda: json.loads(document))
    assert spins > 4 * held, (spins, held)


@pytest.mark.skipif(cores() < 2, reason="needs two cores")
def test_two_threads_about_twice_one(fast_receiver, encryptor, issuer):
    payload = body([presence_item(encryptor) for _ in range(100)], [issuer.token(APP_ID, TENANT)])

    def work():
        for _ in range(6):
            fast_receiver.receive(payload)

    def timed(threads):
        ts = [threading.Thread(target=work) for _ in range(threads)]
        start = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return time.perf_counter() - start

    # The same work per thread: with the GIL released, two threads take about as long as one.
    # Best of five, as the machine may be shared.
    speedups = []
    for _ in range(5):
        one = timed(1)
        speedups.append(2 * one / timed(2))
        if speedups[-1] > 1.6:
            break
    busy = os.getloadavg()[0] > cores() - 1
    if busy and max(speedups) <= 1.6:
        warnings.warn(f"the machine is busy (load {os.getloadavg()[0]:.1f} on {cores()} cores): "
                      f"two-thread speedups {speedups} not judged")
        return
    assert max(speedups) > 1.6, speedups
