"""receive releases the GIL: Python runs while it works, and two threads decrypt about twice as
fast as one."""

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


def test_python_runs_while_receive_works(fast_receiver, encryptor, issuer):
    payload = body([presence_item(encryptor) for _ in range(300)], [issuer.token(APP_ID, TENANT)])
    done = threading.Event()
    spins = 0

    def work():
        assert all(i.status == "decrypted" for i in fast_receiver.receive(payload).items)
        done.set()

    t = threading.Thread(target=work)
    t.start()
    while not done.is_set():
        spins += 1
    t.join()
    # With the GIL held for the whole call, this thread would get one switch interval (5 ms) at
    # most before the call ends; released, it runs all along (about a million spins).
    assert spins > 50_000, spins


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
