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
names, sidecars, and that every template parses -- so bad input changes nothing, and
every problem is reported at once (``SyncErrors.errors``), not only the first; then
objects are created, updated (content and sidecar metadata; keys a previous sync set and
the sidecar no longer has are removed) or deleted so the store matches the folder.

``sync_dir(..., dry_run=True)`` reports what would change and changes nothing;
``create_user=False`` refuses a user whose home does not exist (a typo in ``--user``
would otherwise publish a new API tree).
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


class SyncErrors(SyncError):
    """Every problem of a folder; reads as the first one, ``(and N more)``."""

    def __init__(self, errors: list[SyncError]):
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first.key, first.reason + more, BAD_INPUT)
        self.errors = errors


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
    from regapi import websession
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
        elif key == websession.META and value not in websession.MODES:
            raise SyncError("e.regapi.sync.meta", f"{shown}: {key} must be one of "
                            f"{', '.join(websession.MODES)}", BAD_INPUT)


def scan(src: str) -> dict[str, Entry]:
    """Read and check the folder; ``{rel: Entry}``.  Raises ``SyncErrors`` listing every
    problem (or SyncError when ``src`` is not a folder)."""
    if not os.path.isdir(src):
        raise SyncError("e.regapi.sync.nodir", f"not a folder: {src}", BAD_INPUT)
    out: dict[str, Entry] = {}
    metas: dict[str, tuple[str, str]] = {}     # rel of target -> (sidecar path, shown)
    errors: list[SyncError] = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not _skip(d))
        reldir = os.path.relpath(dirpath, src)
        reldir = "" if reldir == "." else reldir.replace(os.sep, "/")
        for d in list(dirnames):
            try:
                if os.path.islink(os.path.join(dirpath, d)):
                    raise SyncError("e.regapi.sync.link", f"symbolic link: {reldir}/{d}",
                                    BAD_INPUT)
                _check(d, reldir)
            except SyncError as e:
                errors.append(e)
                dirnames.remove(d)       # its contents would only repeat the problem
                continue
            rel = f"{reldir}/{d}" if reldir else d
            out[rel] = Entry(rel, "DIR")
        for fn in sorted(filenames):
            if _skip(fn):
                continue
            try:
                _scan_file(dirpath, reldir, fn, out, metas)
            except SyncError as e:
                errors.append(e)
    for rel, (full, shown) in sorted(metas.items()):
        try:
            if rel not in out:
                raise SyncError("e.regapi.sync.meta", f"{shown}: no API {rel} beside it",
                                BAD_INPUT)
            out[rel].meta = _load_meta(full, shown)
        except SyncError as e:
            errors.append(e)
    if errors:
        raise SyncErrors(errors)
    return out


def _scan_file(dirpath: str, reldir: str, fn: str, out: dict, metas: dict) -> None:
    """One file of the folder: a template into ``out`` or a sidecar into ``metas``."""
    from wnshell.parser import parse
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
        return
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


def _check(name: str, reldir: str) -> None:
    try:
        check_name(name)
    except WnError as e:
        raise SyncError("e.regapi.sync.name", f"{reldir}/{name}: {e.reason}", BAD_INPUT) from None


def sync_dir(store, src: str, user: str, *, dry_run: bool = False,
             create_user: bool = True) -> SyncReport:
    """Make ``/home/<user>/.regapi/api`` match folder ``src``; returns what changed (with
    ``dry_run``: what would change; nothing is written)."""
    if not USER_RE.fullmatch(user):
        raise SyncError("e.regapi.sync.user", f"bad user name: {user!r}", BAD_INPUT)
    want = scan(src)
    if not create_user and store.fetch(f"/home/{user}") is None:
        raise SyncError("e.regapi.sync.nouser", f"no user {user} (/home/{user} does not "
                        "exist; --create-user creates it)", BAD_INPUT)
    root = f"/home/{user}/.regapi/api"
    rep, actions = _plan(store, want, root)
    if not dry_run:
        _apply(store, root, actions)
    return rep


def _plan(store, want: dict[str, Entry], root: str):
    """Compare the store with the folder, reading only: the report and the actions."""
    rep = SyncReport()
    actions: list[tuple] = []
    gone: set[str] = set()          # rels removed (with their subtrees)
    root_obj = store.fetch(root)

    # remove what the folder no longer has (depth first, whole subtrees at once)
    def prune(dir_obj, rel: str):
        for ch in store.children(dir_obj["id"]):
            crel = f"{rel}/{ch['nm']}" if rel else ch["nm"]
            e = want.get(crel)
            if e is None or e.race != ch.get("race"):
                actions.append(("delete", ch["id"]))
                gone.add(crel)
                rep.removed.append(crel)
            elif ch.get("race") == "DIR":
                prune(ch, crel)
    if root_obj is not None:
        prune(root_obj, "")

    for rel in sorted(want, key=lambda r: (r.count("/"), r)):
        e = want[rel]
        ph = f"{root}/{rel}"
        removed = any(rel == g or rel.startswith(g + "/") for g in gone)
        cur = None if root_obj is None or removed else store.fetch(ph)
        meta = dict(e.meta)
        meta[MANAGED] = sorted(e.meta)
        if cur is None:
            actions.append(("create", ph, e.race, meta,
                            e.content if e.race == "FILE" else None))
            rep.created.append(rel)
            continue
        content = None
        if e.race == "FILE" and store.read(cur["id"]) != e.content:
            content = e.content
        old_keys = cur.get(MANAGED) or []
        changes = {k: v for k, v in meta.items() if cur.get(k) != v}
        for k in old_keys:
            if k not in e.meta and k in cur:
                changes[k] = None
        if content is not None or changes:
            actions.append(("update", cur["id"], content, changes))
            rep.updated.append(rel)
        else:
            rep.unchanged += 1
    return rep, actions


def _apply(store, root: str, actions: list[tuple]) -> None:
    if store.fetch(root) is None:
        store.create(root, "DIR", parents=True)
    for act in actions:
        if act[0] == "delete":
            store.delete(act[1], recursive=True)
        elif act[0] == "create":
            _, ph, race, meta, content = act
            store.create(ph, race, meta, parents=True, content=content)
        else:
            _, oid, content, changes = act
            if content is not None:
                store.write(oid, content)
            if changes:
                store.set_meta(oid, changes)
