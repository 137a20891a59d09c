"""Path and name rules of the store, and object ids.

Store paths are absolute (``/a/b``), or anchored on an object id (``id:ID``,
``id:ID/sub/path``).  ``resolve`` turns every form a user may type -- ``~``, ``~/x``,
``./x``, ``../x``, ``x/y``, ``id:ID/x`` -- into one of those two normal forms:

>>> resolve("../b/./c", cwd="/home/demo/a")
'/home/demo/b/c'
>>> resolve("~/orders", home="/home/demo")
'/home/demo/orders'
>>> resolve("/../../etc")          # nothing escapes above /
'/etc'

Names (path segments) are never empty, never contain ``/``, NUL or another control
character, and are at most ``MAX_NAME`` bytes; ``.`` and ``..`` are navigation, never
names.  Every violation raises ``StoreError("e.io.path.invalid")``.
"""
from __future__ import annotations

import os
import re

from .errors import BAD_INPUT, StoreError

MAX_NAME = 255          # bytes, UTF-8
MAX_PATH = 4096         # bytes, UTF-8
ID_LEN = 26

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# ---- ids ------------------------------------------------------------------------
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B32_PAIRS: list[str] = []


def new_id() -> str:
    """A fresh object id: 26 lowercase URL-safe characters (base32 of 128 random bits,
    RFC 4648's alphabet, unpadded: what ``base64.b32encode`` spells, in half its time:
    the 130 bits, two zero bits appended, read as 13 pairs of letters)."""
    pairs = _B32_PAIRS
    if not pairs:
        pairs[:] = [a + b for a in _B32 for b in _B32]
    # os.urandom is what secrets.token_bytes returns; the secrets module would also
    # import random, hmac and hashlib
    n = int.from_bytes(os.urandom(16), "big") << 2
    return "".join([pairs[(n >> shift) & 1023] for shift in range(120, -1, -10)])


def is_id(text: str) -> bool:
    """True for strings that may be an object id (URL-safe, 1..64 chars)."""
    return isinstance(text, str) and bool(_ID_RE.match(text))


# ---- errors ---------------------------------------------------------------------
def invalid(reason: str) -> StoreError:
    return StoreError("e.io.path.invalid", reason, BAD_INPUT)


def _show(text: str) -> str:
    """A path for an error message: control characters escaped, length bounded."""
    shown = _CONTROL.sub(lambda m: "\\x%02x" % ord(m.group()), text)
    return shown if len(shown) <= 200 else shown[:200] + "..."


# ---- names ----------------------------------------------------------------------
def check_name(nm: str) -> str:
    """Return ``nm`` if it is a valid object name, else raise ``e.io.path.invalid``."""
    if not isinstance(nm, str):
        raise invalid(f"name must be a string, not {type(nm).__name__}")
    if nm == "":
        raise invalid("empty name")
    if "/" in nm:
        raise invalid(f"name contains '/': {_show(nm)}")
    if _CONTROL.search(nm):
        raise invalid(f"name contains a control character: {_show(nm)}")
    if nm in (".", ".."):
        raise invalid(f"'{nm}' is not a name")
    if len(_utf8(nm)) > MAX_NAME:
        raise invalid(f"name longer than {MAX_NAME} bytes: {_show(nm)}")
    return nm


def _check_text(path: str, what: str = "path") -> None:
    if not isinstance(path, str):
        raise invalid(f"{what} must be a string, not {type(path).__name__}")
    if _CONTROL.search(path):
        raise invalid(f"{what} contains a control character: {_show(path)}")
    if len(_utf8(path)) > MAX_PATH:
        raise invalid(f"{what} longer than {MAX_PATH} bytes")


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(f"not valid Unicode text: {_show(text.encode('utf-8', 'replace').decode())}") from None


def _normalize(segments: list[str], base: list[str], *, keep_up: bool = False) -> list[str]:
    """Apply ``segments`` (with ``.``/``..``/empty) to ``base``.  Above the top, ``..``
    is dropped (``keep_up`` False: like ``/..`` == ``/``) or kept (``keep_up`` True: an
    ``id:`` anchor, resolved later against the object's real path)."""
    out = list(base)
    for seg in segments:
        if seg in ("", "."):
            continue
        if seg == "..":
            if out and out[-1] != "..":
                out.pop()
            elif keep_up:
                out.append("..")
            continue
        check_name(seg)
        out.append(seg)
    return out


def _split_id(path: str) -> tuple[str, list[str]]:
    """``id:ID/a/b`` -> (``ID``, ["a", "b"]) (segments not yet normalized)."""
    rest = path[3:]
    oid, _, sub = rest.partition("/")
    if not is_id(oid):
        raise invalid(f"bad object id in {_show(path)}")
    return oid, sub.split("/") if sub else []


def _format_id(oid: str, segs: list[str]) -> str:
    return "id:" + oid + ("/" + "/".join(segs) if segs else "")


def resolve(path: str, cwd: str = "/", home: str | None = None) -> str:
    """Resolve any user path to a store path (``/abs`` or ``id:ID[/sub]``).

    ``cwd`` is the directory relative paths start from (itself absolute or ``id:``);
    ``home`` is the expansion of ``~`` (``/home/<user>``).
    """
    _check_text(path)
    if path == "":
        raise invalid("empty path")
    if path.startswith("id:"):
        oid, segs = _split_id(path)
        return _format_id(oid, _normalize(segs, [], keep_up=True))
    if path == "~" or path.startswith("~/"):
        if home is None:
            raise invalid("'~' used but there is no home directory")
        home_path = resolve(home, "/", None)
        return resolve(home_path + path[1:], "/", None) if path != "~" else home_path
    if path.startswith("/"):
        return "/" + "/".join(_normalize(path.split("/"), []))
    # relative to cwd
    cwd = "/" if cwd is None else cwd
    base = resolve(cwd, "/", home)
    if base.startswith("id:"):
        oid, segs = _split_id(base)
        return _format_id(oid, _normalize(path.split("/"), segs, keep_up=True))
    return "/" + "/".join(_normalize(path.split("/"), split(base)))


def split(abs_path: str) -> list[str]:
    """Segments of a normalized absolute path (``/`` -> [])."""
    return [s for s in abs_path.split("/") if s]


def join(parent: str, name: str) -> str:
    """Child path of an absolute ``parent`` (``e.io.path.invalid`` over MAX_PATH)."""
    return check_length(("/" + name) if parent == "/" else f"{parent}/{name}")


def check_length(abs_path: str) -> str:
    """``abs_path`` if it is at most MAX_PATH bytes, else ``e.io.path.invalid``: for a
    path put together from pieces (an ``id:`` anchor's path and a sub-path)."""
    if len(abs_path) * 4 > MAX_PATH and len(_utf8(abs_path)) > MAX_PATH:
        raise invalid(f"path longer than {MAX_PATH} bytes")
    return abs_path


def check_moved(dest: str, old_ph: str, longest: int) -> None:
    """A subtree at ``old_ph`` whose longest path has ``longest`` bytes moves to
    ``dest``: refuse when a path below would grow past MAX_PATH (it could never be named
    again)."""
    if longest - len(_utf8(old_ph)) + len(_utf8(dest)) > MAX_PATH:
        raise invalid(f"the move would make paths longer than {MAX_PATH} bytes")


def parent_and_name(abs_path: str) -> tuple[str, str]:
    """``/a/b/c`` -> (``/a/b``, ``c``); raises for ``/``."""
    segs = split(abs_path)
    if not segs:
        raise invalid("'/' has no parent")
    return "/" + "/".join(segs[:-1]), segs[-1]


def ancestors(abs_path: str) -> list[str]:
    """``/a/b/c`` -> [``/``, ``/a``, ``/a/b``] (``/`` -> [])."""
    segs = split(abs_path)
    return ["/" + "/".join(segs[:i]) for i in range(len(segs))]


def d0_d1(abs_path: str) -> tuple[str | None, str | None]:
    """First two segments of a path (``/home/demo/x`` -> (``home``, ``demo``))."""
    segs = split(abs_path)
    return (segs[0] if segs else None), (segs[1] if len(segs) > 1 else None)


def anchor_join(obj_path: str, sub: str) -> str:
    """Absolute path of ``sub`` (normalized, may start with ``..``) below ``obj_path``."""
    return check_length("/" + "/".join(_normalize(sub.split("/") if sub else [],
                                                  split(obj_path))))


def is_within(path: str, ancestor: str) -> bool:
    """True if ``path`` is ``ancestor`` or below it."""
    if ancestor == "/":
        return True
    return path == ancestor or path.startswith(ancestor + "/")
