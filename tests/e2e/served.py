"""One ``wnshell serve`` subprocess with its WeChat Pay simulator, for the e2e modules.

``start`` writes user demo's wxconf (notify URL pointing back at the server, API base
at the simulator), starts ``python -m regapi serve --workers 2`` on a free loopback
port with the APIs of a folder, and waits until it answers; ``stop`` sends SIGTERM and
returns the exit status (None when it had to be killed).  ``write_apis`` writes such a
folder, ``spawn`` starts a server of a module that sets up its own store, and
``wait_for`` polls until something is true.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time

import requests

from objstore import open_store
from regapi.demo import WXCONF, free_port
from wxpay.simulator import Simulator

USER = "demo"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Served:
    """``store_url, store, sim, appid, mch_id, key, port, base, log, proc, http``."""


def start(tmp, store_url: str, apis, *, mch_id: str, start_timeout: float = 20,
          extra_args=(), wxconf_extra="", sim_options=None) -> Served:
    """``wxconf_extra``: lines added to the wxconf (or a function of the Served, for
    values only known once the simulator runs, like its secure_url)."""
    s = Served()
    s.tmp = tmp
    s.store_url = store_url
    s.appid, s.mch_id = "wx" + secrets.token_hex(8), mch_id
    s.key = secrets.token_hex(16)
    s.sim = Simulator(merchants=[(s.appid, s.mch_id, s.key)], **(sim_options or {})).start()
    s.port = free_port()
    s.base = f"http://127.0.0.1:{s.port}"
    s.store = open_store(store_url)
    s.store.create(f"/home/{USER}/.weixin/xxx/wxconf", "FILE", parents=True, content=WXCONF.format(
        appid=s.appid, appsecret=secrets.token_hex(16), mch_id=s.mch_id, pay_key=s.key,
        notify_url=f"{s.base}/api/{USER}/payresult", api_base=s.sim.url).encode()
        + (wxconf_extra(s) if callable(wxconf_extra) else wxconf_extra).encode())
    spawn(s, ("--workers", "2", "--regapi-dir", str(apis), "--user", USER, *extra_args),
          start_timeout)
    return s


def bare(tmp, store_url: str) -> Served:
    """A Served for ``spawn`` over a store the caller filled (no simulator, no wxconf)."""
    s = Served()
    s.tmp, s.store_url = tmp, store_url
    s.port = free_port()
    s.base = f"http://127.0.0.1:{s.port}"
    s.sim = s.store = None
    return s


def spawn(s, args, start_timeout: float = 20, env=None):
    """``python -m regapi serve --port s.port --store s.store_url ARGS`` logging to
    ``s.tmp/server.log`` (``env``: the server's environment, default ours), waited for
    until it answers; sets ``s.log``, ``s.proc`` and ``s.http`` (a session that never
    uses a proxy)."""
    s.log = s.tmp / "server.log"
    with open(s.log, "wb") as log:
        s.proc = subprocess.Popen(
            [sys.executable, "-m", "regapi", "serve", "--port", str(s.port),
             "--store", s.store_url, *args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
            start_new_session=True, env=env)
    s.http = requests.Session()
    s.http.trust_env = False
    deadline = time.time() + start_timeout
    while True:
        assert s.proc.poll() is None, s.log.read_text()
        try:
            if s.http.get(s.base + "/", timeout=1).status_code == 404:
                break
        except requests.ConnectionError:
            pass
        assert time.time() < deadline, "server did not start: " + s.log.read_text()
        time.sleep(0.05)
    return s


def write_apis(root, apis: dict) -> None:
    """A ``--regapi-dir`` folder: ``{relative path: (template, metadata or None)}``."""
    for rel, (text, meta) in apis.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        if meta:
            (root / (rel + ".meta.json")).write_text(json.dumps(meta), encoding="utf-8")


def seed_apis(payresult: str = "payresult") -> dict:
    """The seed's pay and notification APIs for ``write_apis`` (``payresult`` names the
    notification's file: ``payresult`` or ``payresult.regapi``, both /payresult)."""
    from regapi.demo import PAY_API, PAYRESULT_API
    return {"pay": (PAY_API, {"http-header-Content-Type": "application/json"}),
            payresult: (PAYRESULT_API, {"http-header-Content-Type": "text/xml"})}


def burst(port: int, paths, n: int = 400, conc: int = 40) -> dict:
    """``n`` GETs of ``paths`` (in turn) over ``conc`` keep-alive connections started
    together; {status or error name: count}."""
    import http.client
    import threading
    codes: dict = {}
    lock = threading.Lock()
    start = threading.Barrier(conc)

    def one_client(k: int):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start.wait()
        for j in range(k):
            try:
                c.request("GET", paths[j % len(paths)])
                r = c.getresponse()
                r.read()
                code = r.status
            except (OSError, http.client.HTTPException) as e:
                code = type(e).__name__
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            with lock:
                codes[code] = codes.get(code, 0) + 1
        c.close()

    ts = [threading.Thread(target=one_client, args=(n // conc,)) for _ in range(conc)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return codes


def wait_for(cond, timeout: float = 20.0, interval: float = 0.1):
    """``cond()``'s first truthy value, polled every ``interval``; AssertionError after
    ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out")


def stop(s: Served, timeout: float = 20) -> int | None:
    """SIGTERM, then the exit status; a server still running after ``timeout`` is
    killed with its workers and None is returned."""
    s.http.close()
    s.proc.send_signal(signal.SIGTERM)
    try:
        return s.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(s.proc.pid, signal.SIGKILL)
        s.proc.wait(timeout=10)
        return None
    finally:
        if s.sim is not None:
            s.sim.stop()
        if s.store is not None:
            s.store.close()


def log_count(s: Served, text: str, wait: float = 5.0) -> int:
    """How often ``text`` is in the server's log once it has shown up (the workers
    write INFO lines every 0.25 s, off the request's thread) and one more flush has
    passed, so a second copy would be counted too."""
    deadline = time.time() + wait
    while text not in s.log.read_text(encoding="utf-8", errors="replace") \
            and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.4)
    return s.log.read_text(encoding="utf-8", errors="replace").count(text)


def get(s: Served, path: str, **kw):
    return s.http.get(s.base + path, timeout=30, allow_redirects=False, **kw)


def new_order(s: Served, name: str, total_fee: int = 888):
    openid = "o" + secrets.token_hex(8)
    o = s.store.create(f"/home/{USER}/orders/{name}", "FILE",
                       {"openid": openid, "total_fee": total_fee, "or_status": 0},
                       parents=True)
    return o, openid


def check_fifty_concurrent_duplicates(s: Served, wait: float) -> None:
    """Pay an order, have the simulator send 50 copies of the notification at once:
    exactly one transition, and 50 SUCCESS replies."""
    order, openid = new_order(s, "dup")
    js = get(s, f"/api/{USER}/pay", params={"id": order["id"], "openid": openid}).json()
    s.http.post(s.sim.url + "/sim/faults", json={"concurrent_notify": 50, "count": 1},
                timeout=5).raise_for_status()
    paid = s.http.post(s.sim.url + "/sim/pay", json={"prepay_id": js["package"][10:]},
                       timeout=10).json()
    assert paid["notify_copies"] == 50
    snap = s.sim.wait_notified(paid["out_trade_no"], timeout=wait)
    firsts = [a for a in snap["notify"]["log"] if a["n"] == 1]
    assert len(firsts) == 50 and snap["notify"]["successes"] == 50
    assert all(a["ok"] and a["status"] == 200 for a in firsts)
    fresh = s.store.get(order["id"])
    assert fresh["or_status"] == 2 and "pay_result_extra" not in fresh
    assert fresh["pay_result"]["transaction_id"] == paid["transaction_id"]
    assert log_count(s, f"order {order['id']} paid") == 1        # one transition
