"""The supervisor's relay (multi-worker without Redis) forwards every purge to every worker,
including one attached a moment ago: the case of a worker restarted after a crash."""

from __future__ import annotations

import time
from multiprocessing import Pipe

from edgeproxy.proxy.localbus import Relay

MESSAGE = ("purge", {"issued_at": 1.0, "urls": ["shop.example/page"]})


def test_a_worker_attached_while_the_relay_waits_receives_the_next_message() -> None:
    relay = Relay()
    first, first_end = Pipe()
    relay.attach(0, first_end)
    relay.start()
    try:
        time.sleep(0.05)  # the relay is now waiting for messages from the workers it knows
        replacement, replacement_end = Pipe()
        relay.attach(1, replacement_end)
        first.send(MESSAGE)
        assert replacement.poll(2.0), "the relay did not forward the purge to the worker attached last"
        assert replacement.recv() == MESSAGE
        assert not first.poll(0.1), "the sender must not get its own message back"
    finally:
        relay.stop()
