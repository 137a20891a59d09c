"""File-like commands on the object store: cat, ls, mkdir, touch, rm, mv.

Paths are resolved by the session (``~``, ``.``, ``..``, relative, ``id:ID``); a glob
(``*``, ``?``, ``[...]``) in the *last* segment matches the children of its parent
(``ls ~/orders/o*``).  Commands that change several objects check every argument first
and change nothing when one is wrong.
"""
from __future__ import annotations

from objstore.errors import BAD_INPUT, CONFLICT, FORBIDDEN, NOT_FOUND, WnError
from wnshell.command import Command

_GLOB_CHARS = "*?["


# ---- helpers shared with commands.obj --------------------------------------------
def parse(args: list[str], flags: str = ""):
    from wnshell.options import parse_opts
    return parse_opts(args, flags=flags)


def usage(key: str, reason: str):
    from wnshell.errors import UsageError
    return UsageError(key, reason)


def _split_last(store_path: str) -> tuple[str, str]:
    """``/a/b/c*`` -> (``/a/b``, ``c*``); ``id:X/c*`` -> (``id:X``, ``c*``)."""
    head, _, last = store_path.rstrip("/").rpartition("/")
    if not head:
        head = "/" if store_path.startswith("/") else head
    return head, last


def has_glob(segment: str) -> bool:
    return any(ch in segment for ch in _GLOB_CHARS)


def is_hidden(name: str) -> bool:
    return name.startswith(".")


def expand(session, path: str, *, missing_ok: bool = False, hidden: bool = False):
    """The objects ``path`` names: one object, or the matches of a glob in its last
    segment (sorted by name; dot-names only when the pattern starts with ``.`` or
    ``hidden``).  Nothing -> ``e.io.obj.noexists`` (or [] with ``missing_ok``)."""
    store = session.store
    store_path = session.resolve(path)
    obj = store.fetch(store_path)
    if obj is not None:
        return [obj]
    head, last = _split_last(store_path)
    if head and last and has_glob(last) and not has_glob(head) \
            and not _glob_from_request(path):
        parent = store.fetch(head)
        if parent is not None and parent.is_dir:
            found = [c for c in store.children(parent.id, glob=last)
                     if hidden or last.startswith(".") or not is_hidden(c.nm)]
            if found:
                return found
    if missing_ok:
        return []
    raise WnError("e.io.obj.noexists", path, NOT_FOUND)


def _glob_from_request(path: str) -> bool:
    """Did a ``*``, ``?`` or ``[`` of ``path`` come from a request value?  Then it is a
    literal character: a request can name an object, never a set of them."""
    if type(path) is str:
        return False
    from wnshell.provenance import from_request_at
    return any(ch in _GLOB_CHARS and from_request_at(path, i, i + 1)
               for i, ch in enumerate(path))


def _need_parent_dir(store, store_path: str, path: str) -> None:
    """The DIR that would hold a new object at ``store_path`` must exist."""
    head, _ = _split_last(store_path)
    parent = store.fetch(head) if head else None
    if parent is None:
        raise WnError("e.io.obj.noexists", head or path, NOT_FOUND)
    if not parent.is_dir:
        raise WnError("e.io.obj.notdir", head, BAD_INPUT)


def _holds_home(session, ph: str) -> str | None:
    """The session's home when the object at ``ph`` is it or a DIR above it."""
    home = getattr(session, "home", None)
    if home and (home + "/").startswith(ph.rstrip("/") + "/"):
        return home
    return None


def iso_ms(ms) -> str:
    """Epoch ms -> ``2026-11-27T09:52:18Z`` (UTC); '-' when absent."""
    if not isinstance(ms, (int, float)):
        return "-"
    import datetime as _dt
    return _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


# ---- cat -------------------------------------------------------------------------
class Cat(Command):
    name = "cat"
    blocks = False                  # memory and the store only
    summary = "print the content of FILE objects (stdin when no path)"
    flags = ""
    options: dict[str, str] = {}
    man = """NAME
    cat - print the content of FILE objects

SYNOPSIS
    cat [PATH...]

DESCRIPTION
    Writes the content of each FILE, one after the other, to stdout.  With no PATH
    it copies stdin to stdout, so it can sit in the middle of a pipeline.
    A glob in the last segment of a PATH (~/logs/*.txt) names every matching FILE.
    Content is read as UTF-8 (invalid bytes become U+FFFD).
    Every PATH is checked before anything is printed.

EXAMPLES
    cat ~/orders/o1
    cat id:${id}                 # the body of a .regapi request object
    echo hello | cat

ERRORS
    e.io.obj.noexists : PATH     no such object (status 1)
    e.io.obj.notfile : PATH      PATH is a DIR (status 1)
"""

    def run(self, session, args, stdin, stdout, stderr) -> int:
        opts = parse(args, self.flags)
        if opts.opts:
            raise usage("e.cmd.cat.option",
                        "unknown option " + opts.typed(next(iter(opts.opts))))
        if not opts.args:
            stdout.write(stdin.read())
            return 0
        objs = [o for p in opts.args for o in expand(session, p)]
        for o in objs:
            if o.is_dir:
                raise WnError("e.io.obj.notfile", o.ph, BAD_INPUT)
        chunks = [session.store.read(o.id).decode("utf-8", errors="replace") for o in objs]
        stdout.write("".join(chunks))
        return 0


# ---- ls --------------------------------------------------------------------------
class Ls(Command):
    name = "ls"
    blocks = False                  # memory and the store only
    summary = "list the children of DIRs (names, or -l long format)"
    flags = "lA"
    options = {"-l": "long format: race, len, lm (ISO time, UTC), name",
               "-A": "also show names starting with a dot"}
    man = """NAME
    ls - list objects

SYNOPSIS
    ls [-l] [-A] [PATH...]

DESCRIPTION
    For a DIR, prints the names of its children, one per line, sorted by name; for a
    FILE, prints its own name.  With no PATH it lists the current directory.
    Names starting with '.' (.regapi, .weixin) are hidden unless -A.
    A glob in the last segment (~/orders/o*) lists the matching objects themselves.
    With several PATHs, each DIR's listing is headed by its path and a colon.

OPTIONS
    -l    long format: RACE LEN LM NAME, where LM is the last-modified time as
          ISO 8601 UTC (2026-11-27T09:52:18Z) and LEN the content length
    -A    show dot-names too

EXAMPLES
    ls
    ls -l ~/orders
    ls -A ~
    ls ~/orders/o*

ERRORS
    e.io.obj.noexists : PATH     no such object (status 1)
"""

    def run(self, session, args, stdin, stdout, stderr) -> int:
        opts = parse(args, self.flags)
        for k in opts.opts:
            if k not in ("l", "A"):
                raise usage("e.cmd.ls.option", "unknown option " + opts.typed(k))
        long_fmt = opts.opts.get("l") is True
        show_all = opts.opts.get("A") is True
        paths = opts.args or ["."]
        # resolve everything first: an error prints nothing
        groups: list[tuple[str | None, list]] = []
        singles: list = []
        for p in paths:
            store_path = session.resolve(p)
            found = expand(session, p, hidden=show_all)
            if len(found) == 1 and found[0].is_dir and session.store.fetch(store_path) is not None:
                kids = session.store.children(found[0].id)
                if not show_all:
                    kids = [k for k in kids if not is_hidden(k.nm)]
                groups.append((found[0].ph, kids))
            else:
                singles.extend(found)
        blocks: list[str] = []
        if singles:
            blocks.append(self._lines(singles, long_fmt))
        headed = len(paths) > 1
        for ph, kids in groups:
            text = self._lines(kids, long_fmt)
            blocks.append(f"{ph}:\n{text}" if headed else text)
        stdout.write("\n".join(b for b in blocks if b is not None))
        return 0

    @staticmethod
    def _lines(objs, long_fmt: bool) -> str:
        out = []
        for o in objs:
            if long_fmt:
                size = o.get("len") or 0
                out.append(f"{o.get('race', '?'):<4} {size:>10} {iso_ms(o.get('lm'))} {o.nm}")
            else:
                out.append(o.nm)
        return "".join(line + "\n" for line in out)


# ---- mkdir -----------------------------------------------------------------------
class Mkdir(Command):
    name = "mkdir"
    blocks = False                  # memory and the store only
    summary = "create DIRs (-p: with parents, no error if it exists)"
    flags = "p"
    options = {"-p": "create missing parents; an existing DIR is not an error"}
    man = """NAME
    mkdir - create DIR objects

SYNOPSIS
    mkdir [-p] PATH...

DESCRIPTION
    Creates each PATH as a DIR.  Without -p the parent must exist and PATH must not.
    With -p, missing parents are created too and a DIR already at PATH is fine.
    Every PATH is checked before any is created.

OPTIONS
    -p    create parents as needed; no error when PATH already is a DIR

EXAMPLES
    mkdir ~/orders
    mkdir -p ~/.weixin/demo/orders

ERRORS
    e.io.obj.exists : PATH       something already has that name (status 1)
    e.io.obj.noexists : PATH     the parent is missing (without -p) (status 1)
    e.io.obj.notdir : PATH       PATH (with -p) or its parent is a FILE (status 1)
"""

    def run(self, session, args, stdin, stdout, stderr) -> int:
        opts = parse(args, self.flags)
        for k in opts.opts:
            if k != "p":
                raise usage("e.cmd.mkdir.option", "unknown option " + opts.typed(k))
        parents = opts.opts.get("p") is True
        if not opts.args:
            raise usage("e.cmd.mkdir.args", "mkdir [-p] PATH...")
        store = session.store
        todo = []
        for p in opts.args:
            sp = session.resolve(p)
            obj = store.fetch(sp)
            if sp in todo and not parents:          # named twice
                raise WnError("e.io.obj.exists", p, CONFLICT)
            if obj is not None:
                if parents and obj.is_dir:
                    continue
                if parents:
                    raise WnError("e.io.obj.notdir", p, BAD_INPUT)
                raise WnError("e.io.obj.exists", p, CONFLICT)
            if not parents:
                _need_parent_dir(store, sp, p)
            todo.append(sp)
        for sp in todo:
            if parents and store.fetch(sp) is not None:  # named twice
                continue
            store.create(sp, "DIR", parents=parents)
        return 0


# ---- touch -----------------------------------------------------------------------
class Touch(Command):
    name = "touch"
    blocks = False                  # memory and the store only
    summary = "create empty FILEs, or bump the last-modified time of existing objects"
    flags = ""
    options: dict[str, str] = {}
    man = """NAME
    touch - create an empty FILE, or update an object's last-modified time

SYNOPSIS
    touch PATH...

DESCRIPTION
    For each PATH: when it exists, its lm (last-modified time) becomes now; when it
    does not, an empty FILE is created (the parent DIR must exist).

EXAMPLES
    touch ~/orders/o1
    touch ~/a ~/b

ERRORS
    e.io.obj.noexists : PATH     the parent DIR is missing (status 1)
"""

    def run(self, session, args, stdin, stdout, stderr) -> int:
        opts = parse(args, self.flags)
        if opts.opts:
            raise usage("e.cmd.touch.option",
                        "unknown option " + opts.typed(next(iter(opts.opts))))
        if not opts.args:
            raise usage("e.cmd.touch.args", "touch PATH...")
        store = session.store
        plan = []
        for p in opts.args:
            sp = session.resolve(p)
            obj = store.fetch(sp)
            if obj is None:
                _need_parent_dir(store, sp, p)
            plan.append((sp, obj))
        for sp, obj in plan:
            if obj is None:
                obj = store.fetch(sp)  # the same path may be named twice
            if obj is None:
                store.create(sp, "FILE")
            else:
                store.set_meta(obj.id, {})
        return 0


# ---- rm --------------------------------------------------------------------------
class Rm(Command):
    name = "rm"
    blocks = False                  # memory and the store only
    summary = "delete objects (-r for DIRs, -f to ignore missing ones)"
    flags = "rf"
    options = {"-r": "delete DIRs with everything below them",
               "-f": "no error for a missing PATH"}
    man = """NAME
    rm - delete objects

SYNOPSIS
    rm [-r] [-f] PATH...

DESCRIPTION
    Deletes each PATH.  A DIR (even an empty one) needs -r, which deletes it with
    everything below it.  A glob in the last segment (~/tmp/*) names every match
    (dot-names only when the pattern starts with '.').
    Every PATH is checked before anything is deleted: one bad PATH deletes nothing.
    The root '/', the session user's home and the DIRs above it are never deleted
    (delete what is inside instead: rm -r ~/orders).

OPTIONS
    -r    delete DIRs recursively
    -f    a missing PATH (or a glob matching nothing) is not an error

EXAMPLES
    rm ~/orders/o1
    rm -rf ~/tmp

ERRORS
    e.io.obj.noexists : PATH     no such object (without -f) (status 1)
    e.io.rm.isdir : PATH         PATH is a DIR and -r was not given (status 1)
    e.io.rm.root : /             refusing to delete the root (status 1)
    e.io.rm.home : PATH          refusing to delete the home or a DIR above it
"""

    def run(self, session, args, stdin, stdout, stderr) -> int:
        opts = parse(args, self.flags)
        for k in opts.opts:
            if k not in ("r", "f"):
                raise usage("e.cmd.rm.option", "unknown option " + opts.typed(k))
        recursive = opts.opts.get("r") is True
        force = opts.opts.get("f") is True
        if not opts.args:
            raise usage("e.cmd.rm.args", "rm [-r] [-f] PATH...")
        victims = {}
        for p in opts.args:
            for o in expand(session, p, missing_ok=force):
                if o.ph == "/":
                    raise WnError("e.io.rm.root", "/", FORBIDDEN)
                home = _holds_home(session, o.ph)
                if home:
                    raise WnError("e.io.rm.home", f"{o.ph} holds the home {home}", FORBIDDEN)
                if o.is_dir and not recursive:
                    raise WnError("e.io.rm.isdir", o.ph, BAD_INPUT)
                victims[o.id] = o
        # drop objects that sit below another victim: deleting the top removes them
        tops = [o for o in victims.values()
                if not any(o.ph.startswith(v.ph.rstrip("/") + "/")
                           for v in victims.values() if v.id != o.id)]
        for o in tops:
            if session.store.get(o.id) is not None:
                session.store.delete(o.id, recursive=recursive)
        return 0


# ---- mv --------------------------------------------------------------------------
class Mv(Command):
    name = "mv"
    blocks = False                  # memory and the store only
    summary = "move or rename objects (into DST when DST is an existing DIR)"
    flags = ""
    options: dict[str, str] = {}
    man = """NAME
    mv - move or rename objects

SYNOPSIS
    mv SRC DST
    mv SRC... DIR

DESCRIPTION
    Renames SRC to DST.  When DST is an existing DIR, SRC moves into it, keeping its
    name; with several SRCs, the last argument must be an existing DIR.  A DIR moves
    with everything below it (their ph, d0, d1 follow); ids never change.
    An existing object is never overwritten.  Every move is checked before any is
    done.  The root '/', the session user's home and the DIRs above it never move.

EXAMPLES
    mv ~/orders/o1 ~/orders/o1.old
    mv ~/a ~/b ~/archive

ERRORS
    e.io.obj.noexists : PATH     SRC (or DST's parent) is missing (status 1)
    e.io.obj.exists : PATH       the target name is taken (status 1)
    e.io.mv.intoself : PATH      a DIR can not move below itself (status 1)
    e.io.mv.home : PATH          refusing to move the home or a DIR above it
"""

    def run(self, session, args, stdin, stdout, stderr) -> int:
        opts = parse(args, self.flags)
        if opts.opts:
            raise usage("e.cmd.mv.option",
                        "unknown option " + opts.typed(next(iter(opts.opts))))
        if len(opts.args) < 2:
            raise usage("e.cmd.mv.args", "mv SRC DST | mv SRC... DIR")
        store = session.store
        *src_paths, dst_path = opts.args
        dst_sp = session.resolve(dst_path)
        dst = store.fetch(dst_sp)
        srcs = [o for p in src_paths for o in expand(session, p)]
        if len(srcs) > 1 and (dst is None or not dst.is_dir):
            raise usage("e.cmd.mv.args", f"moving several objects needs an existing DIR: {dst_path}")
        plan = []
        seen_targets = set()
        for src in srcs:
            if src.ph == "/":
                raise WnError("e.io.mv.root", "/", FORBIDDEN)
            home = _holds_home(session, src.ph)
            if home:
                # moving the home (or a DIR above it) away is deleting it for the user
                raise WnError("e.io.mv.home", f"{src.ph} holds the home {home}", FORBIDDEN)
            if dst is not None and dst.is_dir:
                target = dst.ph.rstrip("/") + "/" + src.nm
                target_dir = dst
            else:
                target = dst_sp if dst_sp.startswith("/") else None
                head, _ = _split_last(dst_sp)
                target_dir = store.fetch(head) if head else None
                if target_dir is None:
                    raise WnError("e.io.obj.noexists", head or dst_path, NOT_FOUND)
                if not target_dir.is_dir:
                    raise WnError("e.io.obj.notdir", target_dir.ph, BAD_INPUT)
                if target is None:
                    target = target_dir.ph.rstrip("/") + "/" + _split_last(dst_sp)[1]
            if target == src.ph:
                continue
            if src.is_dir and (target_dir.ph + "/").startswith(src.ph.rstrip("/") + "/"):
                raise WnError("e.io.mv.intoself", f"{src.ph} -> {target}", BAD_INPUT)
            if store.fetch(target) is not None or target in seen_targets:
                raise WnError("e.io.obj.exists", target, CONFLICT)
            seen_targets.add(target)
            plan.append((src, target))
        for src, target in plan:
            store.move(src.id, target)
        return 0


CAT = Cat()
LS = Ls()
MKDIR = Mkdir()
TOUCH = Touch()
RM = Rm()
MV = Mv()
