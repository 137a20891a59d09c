"""Fault injection: the switches ``POST /sim/faults`` sets, counted down per use."""
from __future__ import annotations


from .state import _CODE

_FAULT_FLAGS = ("timeout", "html", "garbage", "fail_without_sign", "success_without_sign",
                "bad_sign", "return_fail", "systemerror")
_FAULT_NUMBERS = ("latency", "hold", "notify_latency")
_FAULT_COUNTS = ("duplicate_notify", "concurrent_notify", "count")
_NOTIFY_FAULTS = ("duplicate_notify", "concurrent_notify", "notify_latency")

HTML_PAGE = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
             b"<body><h1>502 Bad Gateway</h1><p>stgw</p></body></html>")



class FaultsMixin:
    # ----- faults --------------------------------------------------------------
    def set_faults(self, faults: dict) -> dict:
        """Validate and install fault switches (``{}`` clears); returns them."""
        if not isinstance(faults, dict):
            raise ValueError("faults must be a JSON object")
        clean: dict = {}
        for k, v in faults.items():
            if k in _FAULT_FLAGS:
                if not isinstance(v, bool):
                    raise ValueError(f"{k} must be true or false")
                if v:
                    clean[k] = True
            elif k in _FAULT_NUMBERS:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 600:
                    raise ValueError(f"{k} must be seconds between 0 and 600")
                clean[k] = float(v)
            elif k in _FAULT_COUNTS:
                if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000:
                    raise ValueError(f"{k} must be an integer between 1 and 1000")
                clean[k] = v
            elif k == "http_status":
                if isinstance(v, bool) or not isinstance(v, int) or not 100 <= v <= 599 \
                        or v == 200:
                    raise ValueError("http_status must be an HTTP status other than 200")
                clean[k] = v
            elif k == "err_code":
                if not isinstance(v, str) or not _CODE.match(v):
                    raise ValueError("err_code must be an upper-case WeChat code")
                clean[k] = v
            else:
                raise ValueError(f"unknown fault {str(k)[:40]!r}")
        with self._lock:
            self._fault_left = clean.pop("count", None)
            self._faults = clean
            return self.faults()

    def clear_faults(self) -> None:
        self.set_faults({})

    def faults(self) -> dict:
        with self._lock:
            out = dict(self._faults)
            if self._fault_left is not None and out:
                out["count"] = self._fault_left
            return out

    def _take_faults(self, notify: bool) -> dict:
        """The faults for this use (a /pay/* request or a payment), counting down."""
        with self._lock:
            keys = [k for k in self._faults if (k in _NOTIFY_FAULTS) == notify and k != "hold"]
            if not keys:
                return {}
            taken = dict(self._faults)
            if self._fault_left is not None:
                self._fault_left -= 1
                if self._fault_left <= 0:
                    self._faults, self._fault_left = {}, None
            return taken

