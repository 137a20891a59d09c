"""Helpers shared by every backend: error constructors, metadata validation, the
fields the store computes (``tp``, ``mime``, ``d0``/``d1``, times), and copies."""
from __future__ import annotations

import json
import json.encoder
import time
from collections.abc import Mapping

from . import paths
from .base import READONLY, RESERVED, WnObj
from .errors import BAD_INPUT, CONFLICT, NOT_FOUND, StoreError

TYPE_CHECKING = False   # typing, hashlib and mimetypes cost start-up time: imported late
if TYPE_CHECKING:
    from typing import Any

EMPTY_SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"     # hashlib.sha1(b"").hexdigest()
# reserved fields a caller may set, and the type each must have
SETTABLE_TYPES = {"c": str, "m": str, "g": str, "tp": str, "mime": str, "expi": int}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---- errors -------------------------------------------------------------------------
def noexists(what: str) -> StoreError:
    return StoreError("e.io.obj.noexists", what, NOT_FOUND)


def exists(what: str) -> StoreError:
    return StoreError("e.io.obj.exists", what, CONFLICT)


def notdir(what: str) -> StoreError:
    return StoreError("e.io.obj.notdir", what, BAD_INPUT)


def notfile(what: str) -> StoreError:
    return StoreError("e.io.obj.notfile", what, BAD_INPUT)


def meta_invalid(reason: str) -> StoreError:
    return StoreError("e.io.meta.invalid", reason, BAD_INPUT)


def dir_notempty(what: str) -> StoreError:
    return StoreError("e.io.dir.notempty", what, CONFLICT)


def check_race(race: Any) -> str:
    r = race.upper() if isinstance(race, str) else race
    if r not in ("FILE", "DIR"):
        raise meta_invalid(f"race must be FILE or DIR, not {race!r}")
    return r


def create_args(path: str, race: Any, meta: Mapping[str, Any] | None, content: Any,
                cwd: str, home: str | None) -> tuple[str, str, dict, bytes | None]:
    """``create``'s checks, before any lock is taken: (race, store path, cleaned meta,
    content as bytes or None)."""
    race = check_race(race)
    sp = paths.resolve(path, cwd, home)
    clean = clean_meta(meta)
    data = None if content is None else as_bytes(content)
    if data is not None and race != "FILE":
        raise notfile(f"{path}: a DIR has no content")
    return race, sp, clean, data


def found_dir(doc: dict | None, ph: str, parents: bool) -> dict | None:
    """The rule of every backend's ``_dir`` for ``doc``, the live object at ``ph`` (or
    None): it must be a DIR; a missing one may be made only with ``parents`` (and never
    ``/``).  Returns ``doc``, or None when the caller is to make the DIR."""
    if doc is not None:
        if doc["race"] != "DIR":
            raise notdir(ph)
        return doc
    if not parents or ph == "/":
        raise noexists(ph)
    return None


def check_oid(oid: Any) -> str:
    """Ids given to get/set_meta/...: a malformed one is simply an unknown object."""
    if not paths.is_id(oid):
        raise noexists(f"id:{oid}" if isinstance(oid, str) else f"bad id {oid!r}")
    return oid


# ---- metadata --------------------------------------------------------------------------
def clean_meta(meta: Mapping[str, Any] | None, *, what: str = "metadata") -> dict:
    """Validate caller metadata and return a deep, JSON-normalized copy.

    Keys are non-empty strings, not read-only fields; values are JSON (finite numbers);
    ``None`` values are kept (they mean "delete" for set_meta, "absent" for create);
    ``c m g tp mime`` must be strings and ``expi`` an integer (epoch ms).
    """
    if meta is None:
        return {}
    check_meta(meta, what)
    return to_json(meta, what)


def meta_texts(meta: Mapping[str, Any] | None, *, what: str = "metadata") -> dict:
    """``clean_meta``'s checks, but each value as its JSON text (None stays None, for
    "delete"): what a backend that writes JSON text needs, without decoding it again."""
    if meta is None:
        return {}
    check_meta(meta, what)
    out = {}
    quote = _json_str
    for k, v in meta.items():
        # a plain scalar spelled as json.dumps spells it, without its encoder's layers;
        # anything else, or a scalar that fails a check, is json.dumps' (and its error)
        t = type(v)
        if v is None:
            out[k] = None
        elif t is str and (v.isascii() or _utf8_ok(v)):
            out[k] = quote(v)
        elif t is int and -INT64 <= v < INT64:
            out[k] = int.__repr__(v)
        elif t is bool:
            out[k] = "true" if v else "false"
        elif t is float and v - v == 0.0:
            out[k] = float.__repr__(v)
        else:
            out[k] = _value_text(v, what)
    return out


# json.dumps(text, ensure_ascii=False) of a str: the C function its encoder calls
_json_str = json.encoder.encode_basestring
# json.dumps(v, allow_nan=False, ensure_ascii=False, separators=(",", ":")), with its
# encoder made once instead of on every call (each encode starts its own state)
_COMPACT = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:      # a lone surrogate: json.dumps' path words the error
        return False


def _value_text(v: Any, what: str) -> str:
    """One value's JSON text for ``meta_texts`` (UTF-8 encodable, finite numbers,
    64-bit integers), else ``e.io.meta.invalid``."""
    try:
        text = _COMPACT.encode(dict(v) if isinstance(v, Mapping) else v)
        text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise meta_invalid(f"{what} is not JSON: {str(exc)[:200]}") from None
    check_int_range(v, what)
    return text


def check_meta(meta: Any, what: str) -> None:
    """The key and reserved-field checks of ``clean_meta`` (values are checked by
    ``to_json`` / ``meta_texts``)."""
    if not isinstance(meta, Mapping):
        raise meta_invalid(f"{what} must be a JSON object, not {type(meta).__name__}")
    reserved = _CHECKED_KEYS
    for k, v in meta.items():
        # most keys are free ones: a non-empty str that is no reserved field
        if type(k) is not str or not k or k in reserved:
            _check_key(k, v, what)
    if "expi" in meta and meta["expi"] is not None and not 0 <= meta["expi"] < INT64:
        raise meta_invalid("'expi' is out of range")


# the keys check_meta looks at more closely: read-only, or settable with a type
_CHECKED_KEYS = frozenset(READONLY) | frozenset(SETTABLE_TYPES)


def _check_key(k: Any, v: Any, what: str) -> None:
    if not isinstance(k, str) or not k:
        raise meta_invalid(f"{what} keys must be non-empty strings: {k!r}")
    if k in READONLY:
        raise meta_invalid(f"'{k}' is read-only")
    want = SETTABLE_TYPES.get(k)
    if want is not None and v is not None and (
            not isinstance(v, want) or isinstance(v, bool)):
        raise meta_invalid(f"'{k}' must be {'an integer' if want is int else 'a string'}")


INT64 = 2 ** 63


def to_json(value: Any, what: str) -> Any:
    """A deep copy of ``value`` as JSON would give it back (UTF-8 encodable text,
    finite numbers, 64-bit integers), else ``e.io.meta.invalid``.

    Plain values (exact str/int/float/bool/None, dicts with string keys, lists) are
    checked and copied in one walk, with no JSON text made (5-10x faster than the round
    trip); anything else -- a tuple, a Mapping, a subclass, a value that fails a check
    -- takes the JSON round trip, which normalizes it or names what is wrong, as it
    always did."""
    texts: list = []
    try:
        out = _plain_copy(value, texts)
        "".join(texts).encode("utf-8")      # no lone surrogate in any key or text
        return out
    except (_NotPlain, UnicodeEncodeError, RecursionError):
        pass
    return _to_json_text(value, what)


class _NotPlain(Exception):
    """``_plain_copy`` met a value the JSON round trip must judge."""


def _plain_copy(v: Any, texts: list) -> Any:
    """``v`` copied (containers new) if it is plain JSON, its keys and texts appended
    to ``texts`` (checked by the caller); raises ``_NotPlain`` otherwise."""
    t = type(v)
    if t is dict:
        out = {}
        for k, x in v.items():
            if type(k) is not str:
                raise _NotPlain
            texts.append(k)
            tx = type(x)
            if tx is str:
                texts.append(x)
            elif tx is int:
                if not -INT64 <= x < INT64:
                    raise _NotPlain
            elif tx is not bool and x is not None:
                x = _plain_copy(x, texts)
            out[k] = x
        return out
    if t is list:
        out = []
        for x in v:
            tx = type(x)
            if tx is str:
                texts.append(x)
            elif tx is int:
                if not -INT64 <= x < INT64:
                    raise _NotPlain
            elif tx is not bool and x is not None:
                x = _plain_copy(x, texts)
            out.append(x)
        return out
    if t is str:
        texts.append(v)
        return v
    if t is float:
        if v - v != 0.0:                    # inf or nan
            raise _NotPlain
        return v
    if t is int:
        if not -INT64 <= v < INT64:
            raise _NotPlain
        return v
    if t is bool or v is None:
        return v
    raise _NotPlain


def _to_json_text(value: Any, what: str) -> Any:
    """``to_json`` through JSON text: what normalizes tuples, Mappings and subclasses,
    and what names the problem of a value that is not JSON."""
    try:
        text = json.dumps(dict(value) if isinstance(value, Mapping) else value,
                          allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
        out = json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:   # UnicodeError is a ValueError
        raise meta_invalid(f"{what} is not JSON: {str(exc)[:200]}") from None
    check_int_range(out, what)
    return out


def check_int_range(value: Any, what: str) -> None:
    """Integers must fit every backend (64-bit), at any depth."""
    todo = [value]
    while todo:
        v = todo.pop()
        t = type(v)
        if t is str or t is float or t is bool or v is None:    # the usual leaves
            continue
        if t is dict:
            todo.extend(v.values())
        elif t is list:
            todo.extend(v)
        elif isinstance(v, int) and not isinstance(v, bool):
            if not -INT64 <= v < INT64:
                raise meta_invalid(f"{what}: integer out of the 64-bit range")
        elif isinstance(v, Mapping):        # (an ABC check: only for what is left)
            todo.extend(v.values())
        elif isinstance(v, (list, tuple)):
            todo.extend(v)


def apply_changes(doc: dict, changes: Mapping[str, Any], now: int) -> None:
    """Apply cleaned changes (None deletes) to ``doc`` in place and bump ``lm``."""
    if doc.get("ph") == "/" and changes.get("expi") is not None:
        raise meta_invalid("'/' cannot expire")
    for k, v in changes.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    doc["lm"] = max(now, doc.get("lm", 0))


def same_value(a: Any, b: Any) -> bool:
    """JSON equality used by cas: booleans never equal numbers; 1 == 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def clean_expect(expect: Mapping[str, Any]) -> dict:
    if not isinstance(expect, Mapping):
        raise meta_invalid(f"cas expectations must be a JSON object, not {type(expect).__name__}")
    for k in expect:
        if not isinstance(k, str) or not k:
            raise meta_invalid(f"cas keys must be non-empty strings: {k!r}")
    return to_json(expect, "cas expectations")


def matches_expect(doc: Mapping[str, Any], expect: Mapping[str, Any]) -> bool:
    for k, want in expect.items():
        have = doc.get(k)
        if want is None:
            if have is not None:
                return False
        elif have is None or not same_value(have, want):
            return False
    return True


def check_delta(key: Any, delta: Any) -> None:
    if not isinstance(key, str) or not key:
        raise meta_invalid(f"incr key must be a non-empty string: {key!r}")
    to_json(key, "incr key")
    if key in RESERVED:
        raise meta_invalid(f"'{key}' is a reserved field")
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise meta_invalid("incr delta must be an integer")
    if not -INT64 <= delta < INT64:
        raise meta_invalid("incr delta is out of range")


def incr_value(current: Any, key: str, delta: int) -> int:
    if current is None:
        current = 0
    if isinstance(current, bool) or not isinstance(current, int):
        raise meta_invalid(f"'{key}' is not an integer")
    if not -INT64 <= current + delta < INT64:
        raise meta_invalid(f"'{key}' would leave the 64-bit range")
    return current + delta


def glob_regex(glob: Any) -> str:
    """A children() name glob (``*``, ``?``, ``[...]``) as regex text."""
    import fnmatch
    if not isinstance(glob, str):
        raise paths.invalid(f"glob must be a string, not {type(glob).__name__}")
    paths._utf8(glob)
    return "^" + fnmatch.translate(glob)       # anchored: REGEXP uses re.search


def as_bytes(data: Any) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise meta_invalid(f"content must be bytes, not {type(data).__name__}")


# ---- computed fields -------------------------------------------------------------------
def type_of(nm: str) -> tuple[str | None, str | None]:
    """(tp, mime) from a FILE name's extension."""
    dot = nm.rfind(".")
    if dot <= 0 or dot == len(nm) - 1:
        return None, "application/octet-stream"
    tp = nm[dot + 1:].lower()
    import mimetypes
    mime = mimetypes.types_map.get("." + tp) or mimetypes.common_types.get("." + tp)
    if mime is None:
        mime = mimetypes.guess_type("x." + tp)[0] or (
            "text/plain" if tp in ("txt", "md", "log", "regapi", "sh", "hjson") else
            "application/octet-stream")
    return tp, mime


def new_doc(oid: str, pid: str, nm: str, ph: str, race: str, meta: Mapping[str, Any],
            now: int) -> dict:
    """A fresh object's fields (meta already cleaned; None values dropped)."""
    d0, d1 = paths.d0_d1(ph)
    doc: dict[str, Any] = {"id": oid, "pid": pid, "nm": nm, "ph": ph, "race": race}
    if d0 is not None:
        doc["d0"] = d0
    if d1 is not None:
        doc["d1"] = d1
    doc["ct"] = now
    doc["lm"] = now
    if race == "FILE":
        tp, mime = type_of(nm)
        if tp is not None:
            doc["tp"] = tp
        doc["mime"] = mime
        doc["len"] = 0
        doc["sha1"] = EMPTY_SHA1
    if None in meta.values():             # None means "absent"
        for k, v in meta.items():
            if v is not None:
                doc[k] = v
    else:
        doc.update(meta)
    return doc


def relocate(doc: dict, new_ph: str) -> None:
    """Set ``ph``/``d0``/``d1`` of ``doc`` for its new path."""
    doc["ph"] = new_ph
    d0, d1 = paths.d0_d1(new_ph)
    for k, v in (("d0", d0), ("d1", d1)):
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v


def renamed_type(doc: dict, old_nm: str, new_nm: str) -> None:
    """After a rename, keep ``tp``/``mime`` true when they were derived from the name."""
    if doc.get("race") != "FILE" or old_nm == new_nm:
        return
    old_tp, old_mime = type_of(old_nm)
    if doc.get("tp") == old_tp and doc.get("mime") == old_mime:
        tp, mime = type_of(new_nm)
        if tp is None:
            doc.pop("tp", None)
        else:
            doc["tp"] = tp
        doc["mime"] = mime


def move_dest(src: Mapping[str, Any], dest: str, target: Mapping[str, Any] | None) -> str | None:
    """Where ``move`` puts ``src`` when asked for ``dest`` (``target``: the live object
    there): into ``target`` when that is another DIR; None when ``src`` is already there."""
    if target is not None and target["race"] == "DIR" and target["id"] != src["id"]:
        dest = paths.join(dest, src["nm"])
    if dest == src["ph"]:
        return None
    if paths.is_within(dest, src["ph"]):
        raise paths.invalid(f"cannot move {src['ph']} into itself")
    return dest


def moved(doc: dict, pid: str, nm: str, dest: str, now: int) -> None:
    """The moved object's own fields after a move to ``dest`` (its descendants only
    change ``ph``/``d0``/``d1``)."""
    doc["pid"] = pid
    renamed_type(doc, doc["nm"], nm)
    doc["nm"] = nm
    doc["lm"] = max(now, doc.get("lm", 0))
    relocate(doc, dest)


# values that are immutable: shared between the store's copy and the caller's as they are
_ATOMS = frozenset({str, int, float, bool, type(None)})


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON-shaped ``dict``/``list`` (what the store keeps: str, int,
    float, bool, None, dicts and lists of them), with no JSON text in between: only
    the dicts and lists are new, the immutable leaves are shared (4x faster than a
    ``json.loads(json.dumps(v))`` round trip, 6x faster than ``copy.deepcopy``).
    Anything else inside (a tuple, a dict or list subclass) takes the JSON round trip
    it always took, so the copy is exactly what it was."""
    t = type(value)
    if t is dict:
        atoms = _ATOMS
        return {k: v if type(v) in atoms else copy_json(v) for k, v in value.items()}
    if t is list:
        atoms = _ATOMS
        return [v if type(v) in atoms else copy_json(v) for v in value]
    return json.loads(json.dumps(value))


def copy_out(doc: Mapping[str, Any]) -> WnObj:
    """A WnObj the caller may mutate freely (a deep copy of every dict and list
    value; the rest is immutable and shared)."""
    out = WnObj(doc)
    atoms = _ATOMS
    for k, v in doc.items():
        if type(v) not in atoms and isinstance(v, (dict, list)):
            out[k] = copy_json(v)
    return out


def is_expired(doc: Mapping[str, Any], now: int) -> bool:
    expi = doc.get("expi")
    return expi is not None and expi < now
