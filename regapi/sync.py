"""``wnshell sync DIR [--user U]``: make ``/home/<U>/.regapi/api/`` match a folder.

Users keep their ``.regapi`` files in git.  The folder mirrors the API tree:

    apis/
      pay                    -> /home/demo/.regapi/api/pay        (content = template)
      payresult.regapi       -> /home/demo/.regapi/api/payresult  (".regapi" is dropped)
      payresult.regapi.meta.json  metadata of payresult, e.g.
                                 {"http-header-Content-Type": "text/xml"}
      user/_ANY/_action      -> /home/demo/.regapi/api/user/_ANY/_action

Hidden files and folders (``.git``, ``.env``…) and editor leftovers (``*~``, ``*.swp``)
are skipped.  A sidecar ``NAME.meta.json`` holds a JSON object of metadata for NAME
(reserved fields such as ``id`` or ``ph`` are refused).  Everything is checked first --
names, sidecars, and that every template parses -- so bad input changes nothing; then
objects are created, updated (content and sidecar metadata; keys a previous sync set and
the sidecar no longer has are removed) or deleted so the store matches the folder.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from objstore.base import RESERVED
from objstore.common import clean_meta
from objstore.errors import BAD_INPUT, WnError
from objstore.paths import check_name

from regapi.router import USER_RE

SUFFIX = ".regapi"
META_SUFFIX = ".meta.json"
MANAGED = "regapi-sync-keys"     # metadata listing the keys the last sync set
MAX_FILE = 1 << 20


class SyncError(WnError):
    pass


@dataclass
class Entry:
    rel: str                     # path below the api root, "/"-joined
    race: str                    # FILE or DIR
    content: bytes = b""
    meta: dict = field(default_factory=dict)


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0

    def line(self) -> str:
        return (f"created {len(self.created)}, updated {len(self.updated)}, "
                f"removed {len(self.removed)}, unchanged {self.unchanged}")


def _skip(name: str) -> bool:
    return name.startswith(".") or name.endswith("~") or name.endswith((".swp", ".swo"))


def _load_meta(path: str, shown: str) -> dict:
    if os.path.islink(path) or not os.path.isfile(path):
        # as for templates: a link could read any file of the machine into the store
        raise SyncError("e.regapi.sync.link", f"not a regular file: {shown}", BAD_INPUT)
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(MAX_FILE + 1).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise SyncError("e.regapi.sync.meta", f"{shown}: not a JSON object ({type(e).__name__})",
                        BAD_INPUT) from None
    if not isinstance(data, dict):
        raise SyncError("e.regapi.sync.meta", f"{shown}: not a JSON object", BAD_INPUT)
    bad = [k for k in data if k in RESERVED or k == MANAGED or not isinstance(k, str)]
    if bad:
        raise SyncError("e.regapi.sync.meta", f"{shown}: reserved key {bad[0]!r}", BAD_INPUT)
    try:    # what the store would refuse later, half-way through the sync
        data = clean_meta(data)
    except WnError as e:
        raise SyncError("e.regapi.sync.meta", f"{shown}: {e.reason}", BAD_INPUT) from None
    _check_response_meta(data, shown)
    return data


def _check_response_meta(meta: dict, shown: str) -> None:
    """Response metadata the server would silently leave out is an error here, where the
    operator sees it: headers that are not one ASCII line under an HTTP token name (or
    are framing headers), a Content-Type that is not a MIME type, a redirect code other
    than 301/302, a regapi-reqobj that is not a boolean."""
    from regapi import guard
    from regapi import response as rs
    for key, value in meta.items():
        if value is None:
            continue
        problem = guard.meta_problem(key, value)
        if problem is not None:     # a security key is never silently ignored
            raise SyncError("e.regapi.sync.meta", f"{shown}: {problem}", BAD_INPUT)
        if key.startswith("http-header-"):
            name = key[len("http-header-"):]
            if name.lower() == "content-type":
                ok = rs.clean_mime(value) is not None
            else:
                ok = bool(rs.api_headers({key: value}))
            if not ok:
                raise SyncError("e.regapi.sync.meta", f"{shown}: header {name!r} would "
                                "never be sent (a name that is an HTTP token, not a framing "
                                "header; a value of one ASCII line)", BAD_INPUT)
        elif key == "http-resp-code" and rs.redirect_code(meta) is None:
            raise SyncError("e.regapi.sync.meta", f"{shown}: http-resp-code must be 301 or "
                            "302", BAD_INPUT)
        elif key in ("regapi-reqobj", rs.QS_MIME_META) and not isinstance(value, bool):
            raise SyncError("e.regapi.sync.meta", f"{shown}: {key} must be true or "
                            "false (JSON booleans)", BAD_INPUT)
        elif key == "regapi-reqobj-keep" and not (
                value is True or value is False or (
                    isinstance(value, int) and not isinstance(value, bool)
                    and 0 < value <= 86400)):
            raise SyncError("e.regapi.sync.meta", f"{shown}: regapi-reqobj-keep must be "
                            "true, false or whole seconds from 1 to 86400", BAD_INPUT)


def scan(src: str) -> dict[str, Entry]:
    """Read and check the folder; ``{rel: Entry}``.  Raises SyncError on bad input."""
    from wnshell.parser import parse
    if not os.path.isdir(src):
        raise SyncError("e.regapi.sync.nodir", f"not a folder: {src}", BAD_INPUT)
    out: dict[str, Entry] = {}
    metas: dict[str, tuple[str, str]] = {}     # rel of target -> (sidecar path, shown)
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not _skip(d))
        reldir = os.path.relpath(dirpath, src)
        reldir = "" if reldir == "." else reldir.replace(os.sep, "/")
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                raise SyncError("e.regapi.sync.link", f"symbolic link: {reldir}/{d}", BAD_INPUT)
            _check(d, reldir)
            rel = f"{reldir}/{d}" if reldir else d
            out[rel] = Entry(rel, "DIR")
        for fn in sorted(filenames):
            if _skip(fn):
                continue
            full = os.path.join(dirpath, fn)
            shown = f"{reldir}/{fn}" if reldir else fn
            if fn.endswith(META_SUFFIX):
                base = fn[:-len(META_SUFFIX)]
                if base.endswith(SUFFIX):
                    base = base[:-len(SUFFIX)]
                rel = f"{reldir}/{base}" if reldir else base
                if rel in metas:
                    first = sorted([metas[rel][1], shown])
                    raise SyncError("e.regapi.sync.dup", f"two sidecars for API {rel}: "
                                    f"{first[0]} and {first[1]}", BAD_INPUT)
                metas[rel] = (full, shown)
                continue
            if not os.path.isfile(full) or os.path.islink(full):
                raise SyncError("e.regapi.sync.link", f"not a regular file: {shown}", BAD_INPUT)
            name = fn[:-len(SUFFIX)] if fn.endswith(SUFFIX) and fn != SUFFIX else fn
            _check(name, reldir)
            rel = f"{reldir}/{name}" if reldir else name
            if rel in out:
                raise SyncError("e.regapi.sync.dup", f"two files for API {rel}", BAD_INPUT)
            with open(full, "rb") as f:
                content = f.read(MAX_FILE + 1)
            if len(content) > MAX_FILE:
                raise SyncError("e.regapi.sync.toolarge", f"{shown}: over {MAX_FILE} bytes",
                                BAD_INPUT)
            try:
                parse(content.decode("utf-8"))
            except UnicodeDecodeError:
                raise SyncError("e.regapi.sync.encoding", f"{shown}: not UTF-8",
                                BAD_INPUT) from None
            except WnError as e:
                raise SyncError("e.regapi.sync.syntax", f"{shown}: {e.reason}", BAD_INPUT) from None
            out[rel] = Entry(rel, "FILE", content)
    for rel, (full, shown) in metas.items():
        if rel not in out:
            raise SyncError("e.regapi.sync.meta", f"{shown}: no API {rel} beside it", BAD_INPUT)
        out[rel].meta = _load_meta(full, shown)
    return out


def _check(name: str, reldir: str) -> None:
    try:
        check_name(name)
    except WnError as e:
        raise SyncError("e.regapi.sync.name", f"{reldir}/{name}: {e.reason}", BAD_INPUT) from None


def sync_dir(store, src: str, user: str) -> SyncReport:
    """Make ``/home/<user>/.regapi/api`` match folder ``src``; returns what changed."""
    if not USER_RE.fullmatch(user):
        raise SyncError("e.regapi.sync.user", f"bad user name: {user!r}", BAD_INPUT)
    want = scan(src)
    root = f"/home/{user}/.regapi/api"
    rep = SyncReport()
    if store.fetch(root) is None:
        store.create(root, "DIR", parents=True)

    # remove what the folder no longer has (depth first, whole subtrees at once)
    def prune(dir_ph: str, rel: str):
        for ch in store.children(store.fetch(dir_ph)["id"]):
            crel = f"{rel}/{ch['nm']}" if rel else ch["nm"]
            e = want.get(crel)
            if e is None or e.race != ch.get("race"):
                store.delete(ch["id"], recursive=True)
                rep.removed.append(crel)
            elif ch.get("race") == "DIR":
                prune(ch["ph"], crel)
    prune(root, "")

    for rel in sorted(want, key=lambda r: (r.count("/"), r)):
        e = want[rel]
        ph = f"{root}/{rel}"
        cur = store.fetch(ph)
        meta = dict(e.meta)
        meta[MANAGED] = sorted(e.meta)
        if cur is None:
            store.create(ph, e.race, meta, parents=True,
                         content=e.content if e.race == "FILE" else None)
            rep.created.append(rel)
            continue
        changed = False
        if e.race == "FILE" and store.read(cur["id"]) != e.content:
            store.write(cur["id"], e.content)
            changed = True
        old_keys = cur.get(MANAGED) or []
        changes = {k: v for k, v in meta.items() if cur.get(k) != v}
        for k in old_keys:
            if k not in e.meta and k in cur:
                changes[k] = None
        if changes:
            store.set_meta(cur["id"], changes)
            changed = True
        if changed:
            rep.updated.append(rel)
        else:
            rep.unchanged += 1
    return rep
