"""The fault switches of a simulator -- v2's ``POST /sim/faults`` and v3's
``POST /sim/v3/faults`` check, hold and count down their faults the same way; only
the names each knows (and which HTTP statuses it may fake) differ, so each passes
its own.  No I/O."""
from __future__ import annotations

import re
import threading

__all__ = ["CODE", "FaultSwitches"]

CODE = re.compile(r"^[A-Z0-9_]{1,64}$")     # an upper-case WeChat error code


class FaultSwitches:
    """``flags`` (true/false), ``numbers`` (seconds 0-600), ``counts`` (1-1000, ``count``
    among them: how many uses they last), ``http_status`` (an int ``http_status_ok``
    accepts), ``err_code`` (a WeChat code); ``notify`` names the ones a notification
    uses, the rest apply to answers."""

    def __init__(self, flags, numbers, counts, notify, http_status_ok, http_status_says):
        self.flags, self.numbers, self.counts = tuple(flags), tuple(numbers), tuple(counts)
        self.notify = frozenset(notify)
        self._http_ok, self._http_says = http_status_ok, http_status_says
        self._lock = threading.Lock()
        self._faults: dict = {}
        self._left: int | None = None

    def _clean(self, faults) -> dict:
        if not isinstance(faults, dict):
            raise ValueError("faults must be a JSON object")
        clean: dict = {}
        for k, v in faults.items():
            if k in self.flags:
                if not isinstance(v, bool):
                    raise ValueError(f"{k} must be true or false")
                if v:
                    clean[k] = True
            elif k in self.numbers:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 600:
                    raise ValueError(f"{k} must be seconds between 0 and 600")
                clean[k] = float(v)
            elif k in self.counts:
                if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000:
                    raise ValueError(f"{k} must be an integer between 1 and 1000")
                clean[k] = v
            elif k == "http_status":
                if isinstance(v, bool) or not isinstance(v, int) or not self._http_ok(v):
                    raise ValueError(f"http_status must be {self._http_says}")
                clean[k] = v
            elif k == "err_code":
                if not isinstance(v, str) or not CODE.match(v):
                    raise ValueError("err_code must be an upper-case WeChat code")
                clean[k] = v
            else:
                raise ValueError(f"unknown fault {str(k)[:40]!r}")
        return clean

    def set(self, faults) -> dict:
        """Check and install ``faults`` (``{}`` clears); ValueError names a bad one."""
        clean = self._clean(faults)
        with self._lock:
            self._left = clean.pop("count", None)
            self._faults = clean
        return self.current()

    def current(self) -> dict:
        with self._lock:
            out = dict(self._faults)
            if self._left is not None and out:
                out["count"] = self._left
            return out

    def take(self, notify: bool) -> dict:
        """The faults of this use (an answer, or a notification when ``notify``),
        counting ``count`` down when any applies; only this kind's (and ``hold``): an
        answer never carries a notification's fault, nor the other way round."""
        with self._lock:
            if not any((k in self.notify) == notify and k != "hold" for k in self._faults):
                return {}
            taken = {k: v for k, v in self._faults.items()
                     if (k in self.notify) == notify or k == "hold"}
            if self._left is not None:
                self._left -= 1
                if self._left <= 0:
                    self._faults, self._left = {}, None
            return taken
