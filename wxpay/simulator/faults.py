"""Fault injection: the switches ``POST /sim/faults`` sets, counted down per use."""
from __future__ import annotations

from ..simfaults import FaultSwitches

_FAULT_FLAGS = ("timeout", "html", "garbage", "fail_without_sign", "success_without_sign",
                "bad_sign", "return_fail", "systemerror")
_FAULT_NUMBERS = ("latency", "hold", "notify_latency")
_FAULT_COUNTS = ("duplicate_notify", "concurrent_notify", "count")
_NOTIFY_FAULTS = ("duplicate_notify", "concurrent_notify", "notify_latency")

HTML_PAGE = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
             b"<body><h1>502 Bad Gateway</h1><p>stgw</p></body></html>")


def new_switches() -> FaultSwitches:
    return FaultSwitches(_FAULT_FLAGS, _FAULT_NUMBERS, _FAULT_COUNTS, _NOTIFY_FAULTS,
                         lambda v: 100 <= v <= 599 and v != 200,
                         "an HTTP status other than 200")


class FaultsMixin:
    """The v2 simulator's faults (wxpay.simfaults holds the logic v3 shares)."""

    def set_faults(self, faults: dict) -> dict:
        """Validate and install fault switches (``{}`` clears); returns them."""
        return self._fault_switches.set(faults)

    def clear_faults(self) -> None:
        self.set_faults({})

    def faults(self) -> dict:
        return self._fault_switches.current()

    def _take_faults(self, notify: bool) -> dict:
        """The faults for this use (a /pay/* request or a payment), counting down."""
        return self._fault_switches.take(notify)
