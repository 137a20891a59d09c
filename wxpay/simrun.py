"""What the simulators share as processes (``wxpay-sim``, ``python -m
wxpay.v3.simulator``, ``wxmp-sim``) and as servers: loopback only unless told
otherwise, the retry-schedule option and the retries it drives, running until
SIGTERM/SIGINT."""
from __future__ import annotations

import argparse
import ipaddress
import signal
import threading

__all__ = ["is_loopback_host", "retry_schedule", "deliver_with_retries",
           "run_until_signalled"]


def is_loopback_host(host: str | None) -> bool:
    """``localhost`` or a loopback address (IPv4, IPv6, bracketed or not)."""
    if not host:
        return False
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def retry_schedule(text: str) -> tuple[float, ...]:
    """The ``--retry-schedule S,S,...`` option: pauses between notification attempts."""
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("expected seconds like 0.2,0.2,0.5") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("retry pauses cannot be negative")
    return values


def deliver_with_retries(stop: threading.Event, schedule, post, barrier=None) -> bool:
    """One copy of a notification: wait at ``barrier`` (copies sent at once start
    together), then ``post(attempt)`` (1, 2, ...) now and after each pause of
    ``schedule`` until it is received (True); False when every attempt failed or
    ``stop`` was set.  What an attempt is and how it is recorded is the caller's."""
    if barrier is not None:
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
    for n, pause in enumerate((0.0,) + tuple(schedule)):
        if pause and stop.wait(pause):
            return False
        if post(n + 1):
            return True
    return False


def run_until_signalled(stop, ready_line: str | None = None) -> int:
    """Print ``ready_line``, wait for SIGTERM or SIGINT, then ``stop()``; 0."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    if ready_line:
        print(ready_line, flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        stop()
    return 0
