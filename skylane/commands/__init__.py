"""Subcommands of `skylane`: every module here with a `register(subparsers)` adds its own."""
from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("skylane")


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT/SIGTERM; a second signal interrupts at once."""
    stop = threading.Event()

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
