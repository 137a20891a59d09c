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
from _thread import allocate_lock

from .errors import BAD_INPUT, StoreError

MAX_NAME = 255          # bytes, UTF-8
MAX_PATH = 4096         # bytes, UTF-8
ID_LEN = 26

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ID_TAIL = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")     # an id from where match() starts


# ---- ids ------------------------------------------------------------------------
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
# byte -> the letter of its low 5 bits (256 = 8 x 32: every letter equally likely)
_B32_OF_BYTE = (_B32 * 8).encode()
# byte -> the letter of its low 3 bits followed by two zero bits (the 26th letter of
# 128 bits: 25 x 5 + 3): every fourth letter
_B32_LAST = _B32[::4] * 32
_ID_BYTES = 26                      # random bytes per id: one per letter

# Random bytes for ids, read from os.urandom 4 KiB (157 ids) at a time: one system
# call per id was a good part of an id's cost, and a system call lets go of the GIL
# (another thread runs, this one waits to get it back).  Each id takes the next bytes
# under the lock, so no two ids of a process share bytes; a forked child drops what it
# inherited (``_fresh_random``), so it never repeats its parent's ids.
_RANDOM_CHUNK = 4096
_random = [b"", 0]                  # [bytes from os.urandom, next unused offset]
_random_lock = allocate_lock()


def _fresh_random() -> None:
    """In a forked child: the parent's unused bytes are the parent's ids to come; and
    the lock may have been held by a thread that does not exist here."""
    global _random, _random_lock
    _random = [b"", 0]
    _random_lock = allocate_lock()


os.register_at_fork(after_in_child=_fresh_random)


def new_id() -> str:
    """A fresh object id: 26 lowercase URL-safe characters, 128 random bits in RFC
    4648's base32 alphabet (what ``base64.b32encode`` of 16 random bytes spells,
    unpadded: 25 letters of 5 bits, a 26th of 3 bits and two zero bits).  Each letter
    is one random byte looked up in a table (``bytes.translate``: no loop in Python)."""
    with _random_lock:
        rnd = _random
        pos = rnd[1]
        if pos + _ID_BYTES > len(rnd[0]):
            # os.urandom is what secrets.token_bytes returns (the secrets module
            # would also import random, hmac and hashlib)
            rnd[0] = os.urandom(_RANDOM_CHUNK)
            pos = 0
        rnd[1] = pos + _ID_BYTES
        raw = rnd[0][pos:pos + _ID_BYTES]
    return raw[:25].translate(_B32_OF_BYTE).decode("ascii") + _B32_LAST[raw[25]]


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
    # the common case first: printable ASCII (no control character; bytes == chars)
    if (type(nm) is str and nm.isascii() and nm.isprintable() and 0 < len(nm) <= MAX_NAME
            and "/" not in nm and nm != "." and nm != ".."):
        return nm
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
    # The common cases, decided on the text alone: printable ASCII (no control
    # character, one byte a character) of at most MAX_NAME characters (no name in it
    # can be too long), with no empty, "." or ".." segment -- an absolute path that is
    # already normal, ``id:ID`` (and a plain path below it), ``~/x`` below an absolute
    # home, a plain relative path below an absolute cwd.
    # Everything else (and every refusal) is ``_resolve``'s.
    if type(path) is str and path.isascii() and path.isprintable() and 0 < len(path) <= MAX_NAME:
        first = path[0]
        if first == "/":
            if path == "/":
                return path
            t = path + "/"
            if _plain_segments(t):
                return path
        elif first == "i" and path.startswith("id:"):
            cut = path.find("/", 3)
            if cut < 0:
                if _ID_TAIL.match(path, 3):
                    return path
            elif _ID_TAIL.match(path, 3, cut):                  # id:ID/x/y
                t = path[cut:] + "/"
                if _plain_segments(t):
                    return path
        elif first == "~" and (path == "~" or path[1] == "/"):
            if home is not None and path != "~":            # ~/x: below the home
                rest = path[1:]
                t = rest + "/"
                if _plain_segments(t):
                    top = resolve(home, "/", None)
                    if top == "/":
                        return rest
                    if top[0] == "/" and top.isascii() and len(top) + len(rest) <= MAX_PATH:
                        return top + rest
        else:                                               # x/y (and ~x: a name)
            t = "/" + path + "/"
            if _plain_segments(t):
                base = resolve("/" if cwd is None else cwd, "/", home)
                if base == "/":
                    return "/" + path
                if base[0] == "/":
                    return base + "/" + path
    return _resolve(path, cwd, home)


def _plain_segments(t: str) -> bool:
    """``t`` (a path with "/" at both ends) has no empty, "." or ".." segment."""
    return "//" not in t and "/./" not in t and "/../" not in t


def _resolve(path: str, cwd: str, home: str | None) -> str:
    """``resolve``, every rule (its helpers check each name)."""
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
    head = abs_path.split("/", 3)         # a normal path: ["", d0, d1, the rest]
    if head[0] == "":
        if len(head) > 2:
            if head[1] and head[2]:
                return head[1], head[2]
        elif len(head) == 2 and head[1]:
            return head[1], None
    segs = split(abs_path)
    return (segs[0] if segs else None), (segs[1] if len(segs) > 1 else None)


def anchor_join(obj_path: str, sub: str) -> str:
    """Absolute path of ``sub`` (normalized, may start with ``..``) below ``obj_path``."""
    return check_length("/" + "/".join(_normalize(sub.split("/") if sub else [],
                                                  split(obj_path))))


def in_dot_folder(abs_path: str) -> bool:
    """Is the object at ``abs_path`` in a dot-folder (a segment starting with ".":
    the accounts in ``~/.weixin``, the APIs in ``~/.regapi``)?  What
    ``Store.dot_generation`` watches."""
    return "/." in abs_path


def is_within(path: str, ancestor: str) -> bool:
    """True if ``path`` is ``ancestor`` or below it."""
    if ancestor == "/":
        return True
    return path == ancestor or path.startswith(ancestor + "/")
