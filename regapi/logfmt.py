"""One time format for every line ``wnshell serve`` writes to its log (stderr).

    2026-12-01T09:24:17Z [9414] regapi.access 127.0.0.1 GET /api/demo/pay 200 512 3.1ms
    2026-12-01T09:24:17Z [9371] granian INFO Started worker-1
    2026-12-01T09:24:17Z [9371] regapi: serving http://127.0.0.1:8080/api/<user>/<api> ...

``TIME [PID] SOURCE MESSAGE``: TIME is UTC, ISO 8601 to the second (one field, no
space), whoever writes the line -- the access log (``regapi.app.BufferedAccessLog``),
the ``regapi``/``wnshell`` loggers, granian's own logger (``granian_config`` for its
``log_dictconfig``) and the server's start-up lines (``line``).
"""
from __future__ import annotations

import logging
import os
import sys
import time

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
LINE_FORMAT = "%(asctime)s [%(process)d] %(name)s %(message)s"


def stamp(seconds: float | None = None) -> str:
    return time.strftime(TIME_FORMAT, time.gmtime(seconds))


class Formatter(logging.Formatter):
    """``LINE_FORMAT`` with UTC ``TIME_FORMAT`` times (the text of a second made once,
    not for every line of that second)."""
    converter = time.gmtime

    def __init__(self, fmt: str = LINE_FORMAT):
        super().__init__(fmt, TIME_FORMAT)
        self._stamp = (None, "")

    def formatTime(self, record, datefmt=None):
        if datefmt != TIME_FORMAT:
            return super().formatTime(record, datefmt)
        sec = int(record.created)
        last = self._stamp          # one tuple: threads may replace it, never tear it
        if last[0] != sec:
            last = self._stamp = (sec, stamp(sec))
        return last[1]


def granian_config() -> dict:
    """granian's ``log_dictconfig``: its lines in the same shape, on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "generic": {"()": "regapi.logfmt.Formatter",
                        "fmt": "%(asctime)s [%(process)d] granian %(levelname)s %(message)s"},
            "access": {"()": "regapi.logfmt.Formatter"},
        },
        "handlers": {
            "console": {"formatter": "generic", "class": "logging.StreamHandler",
                        "stream": "ext://sys.stderr"},
            "access": {"formatter": "access", "class": "logging.StreamHandler",
                       "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


def line(message: str, source: str = "regapi:", stream=None) -> None:
    """Write one log line now (the server's own start-up and reload lines)."""
    stream = stream or sys.stderr
    stream.write(f"{stamp()} [{os.getpid()}] {source} {message}\n")
    stream.flush()
