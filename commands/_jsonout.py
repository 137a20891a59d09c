"""JSON in and out for commands: one place for parsing rules and output format.

Every command that prints JSON goes through ``dumps``/``write_json`` so the output is
always valid JSON (no NaN/Infinity, UTF-8 text kept as is, 2-space pretty or compact).
Every command that reads JSON from an argument or stdin goes through ``parse_json`` so
bad input is one ``WnError`` line (``e.json.invalid``), never a traceback.

    from commands._jsonout import parse_json, write_json, get_path, pick_keys

    data = parse_json(text, lenient=True)          # JSON, else Walnut's lenient JSON
    write_json(stdout, data, compact=opts.get("c") is True)
    get_path({"a": {"b": [5]}}, "a.b.0")           # -> 5 (raises e.json.nokey)
    pick_keys(obj, "^or_")                          # keys matching a regex
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterator, TextIO

from objstore.errors import BAD_INPUT, NOT_FOUND, WnError

_MISSING = object()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class _OutOfRange(ValueError):
    pass


def _finite_float(text: str) -> float:
    """``parse_float``: ``1e999`` would silently become infinity, which no JSON output
    (and no money field) can hold."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _OutOfRange(text)
    return value


_NUMBER_RE = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _overflowing_number(text: str) -> str | None:
    """The first number literal in ``text`` too large for a float, else None."""
    for m in _NUMBER_RE.finditer(text):
        try:
            if float(m.group()) in (float("inf"), float("-inf")):
                return m.group()
        except ValueError:  # pragma: no cover - the regex only finds numbers
            continue
    return None


def _range_reason(number: str) -> str:
    return f"number {_short(number, 20)} is out of range (JSON numbers here must be finite)"


def plain(value: Any) -> Any:
    """OrderedDict/tuple (hjson) -> plain dict/list, recursively."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def parse_json(text: str, *, lenient: bool = False, key: str = "e.json.invalid",
               what: str = "") -> Any:
    """Parse one JSON value from ``text``.

    Strict JSON first (NaN/Infinity refused).  With ``lenient`` the text may also be
    Walnut's lenient JSON (hjson: unquoted keys, single quotes, ``#`` comments, braces
    optional) -- strict JSON is always tried first, so valid JSON means the same thing
    in both modes.  Raises ``WnError(key, ...)`` (kind bad_input) on failure; ``what``
    names the input in the message (e.g. ``"-u"``).
    """
    prefix = f"{what}: " if what else ""
    if not text.strip():
        raise WnError(key, f"{prefix}empty input", BAD_INPUT)
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise WnError(key, f"{prefix}nested too deeply", BAD_INPUT) from None
    except _OutOfRange as e:
        raise WnError(key, f"{prefix}{_range_reason(str(e))}", BAD_INPUT) from None
    except ValueError as strict_err:
        if not lenient:
            raise WnError(key, f"{prefix}{_describe(strict_err)}", BAD_INPUT) from None
    try:
        import hjson  # imported lazily: only lenient callers pay for it
        value = hjson.loads(text)
    except Exception as err:  # hjson raises several types; all mean "bad input"
        big = _overflowing_number(text)
        reason = _range_reason(big) if big else _describe(err)
        raise WnError(key, f"{prefix}{reason}", BAD_INPUT) from None
    value = plain(value)
    try:
        _check_finite(value, key, prefix)
    except WnError:
        big = _overflowing_number(text)
        if big:
            raise WnError(key, f"{prefix}{_range_reason(big)}", BAD_INPUT) from None
        raise
    return value


def _check_finite(value: Any, key: str, prefix: str) -> None:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise WnError(key, f"{prefix}NaN/Infinity is not valid JSON", BAD_INPUT)
    if isinstance(value, dict):
        for v in value.values():
            _check_finite(v, key, prefix)
    elif isinstance(value, list):
        for v in value:
            _check_finite(v, key, prefix)


def _describe(err: Exception) -> str:
    if isinstance(err, json.JSONDecodeError):
        return f"{err.msg} at line {err.lineno} column {err.colno}"
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def iter_json_stream(text: str, *, key: str = "e.json.invalid") -> Iterator[Any]:
    """Yield each JSON value of a stream of concatenated values (``{..}{..}`` or one per
    line).  Raises ``WnError(key)`` at the first bad value (callers that must not
    half-write should ``list()`` it before printing)."""
    decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            return
        try:
            value, pos = decoder.raw_decode(text, pos)
        except RecursionError:
            raise WnError(key, "nested too deeply", BAD_INPUT) from None
        except _OutOfRange as err:
            raise WnError(key, _range_reason(str(err)), BAD_INPUT) from None
        except ValueError as err:
            raise WnError(key, _describe(err), BAD_INPUT) from None
        yield value


def dumps(value: Any, *, compact: bool = False) -> str:
    """The one JSON output format: pretty (2 spaces) or compact, non-ASCII kept."""
    try:
        if compact:
            return json.dumps(value, ensure_ascii=False, allow_nan=False,
                              separators=(",", ":"))
        return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=2)
    except (TypeError, ValueError) as err:
        raise WnError("e.json.unserializable", str(err), "internal") from None
    except RecursionError:
        raise WnError("e.json.unserializable", "nested too deeply", "internal") from None


def write_json(stdout: TextIO, value: Any, *, compact: bool = False) -> None:
    """Write ``value`` as JSON plus a newline (serialized fully before writing)."""
    stdout.write(dumps(value, compact=compact) + "\n")


def get_path(value: Any, path: str, *, key: str = "e.json.nokey") -> Any:
    """``a.b.0``: walk dict keys and list indexes (negative indexes count from the
    end).  A top-level key that itself contains dots is found as is first.  Missing ->
    ``WnError(key, path)`` (kind not_found)."""
    if isinstance(value, dict) and path in value:
        return value[path]
    cur = value
    for seg in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(seg, _MISSING)
        elif isinstance(cur, list) and re.fullmatch(r"-?\d+", seg):
            idx = int(seg)
            cur = cur[idx] if -len(cur) <= idx < len(cur) else _MISSING
        else:
            cur = _MISSING
        if cur is _MISSING:
            raise WnError(key, path, NOT_FOUND)
    return cur


def compile_regex(pattern: str, *, key: str = "e.regex.invalid") -> re.Pattern:
    """A linear-time regex (objstore.query.linear_regex): a pattern from a request
    can never hold a worker."""
    from objstore.query import linear_regex
    try:
        return linear_regex(pattern)
    except ValueError as err:
        raise WnError(key, f"{_short(pattern)}: {err}", BAD_INPUT) from None


def pick_keys(obj: dict, regex: str | re.Pattern) -> dict:
    """The keys of ``obj`` that ``regex`` finds (``re.search``), order kept."""
    rx = compile_regex(regex) if isinstance(regex, str) else regex
    return {k: v for k, v in obj.items() if rx.search(k)}


def scalar_text(value: Any, *, compact: bool = False) -> str:
    """How a pulled value prints in a pipeline: a string raw (no quotes), anything else
    as JSON."""
    if isinstance(value, str):
        return value
    return dumps(value, compact=compact)


__all__ = ["parse_json", "iter_json_stream", "dumps", "write_json", "get_path",
           "pick_keys", "compile_regex", "scalar_text"]
