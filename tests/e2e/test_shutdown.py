"""SIGTERM: ``wnshell serve`` lets the request in flight finish (200), then exits 0, and
says how many requests were in flight; a second SIGTERM/SIGINT stops it at once."""
import secrets
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from objstore import open_store
from regapi.demo import PAY_API, WXCONF, free_port
from wxpay.simulator import Simulator


class _Served:
    pass


def _start(tmp_path, sim, appid, mch, key):
    s = _Served()
    s.url = f"sqlite://{tmp_path / 's.db'}"
    s.port = port = free_port()
    s.st = st = open_store(s.url)
    st.create("/home/demo/.regapi/api/pay", "FILE",
              {"http-header-Content-Type": "application/json"}, parents=True,
              content=PAY_API.encode())
    st.create("/home/demo/.weixin/xxx/wxconf", "FILE", parents=True, content=WXCONF.format(
        appid=appid, appsecret=secrets.token_hex(16), mch_id=mch, pay_key=key,
        notify_url=f"http://127.0.0.1:{port}/api/demo/payresult", api_base=sim.url).encode())
    s.order = st.create("/home/demo/orders/o1", "FILE",
                        {"openid": "o1", "total_fee": 5, "or_status": 0}, parents=True)
    s.log = tmp_path / "log"
    with open(s.log, "wb") as log:
        s.p = subprocess.Popen([sys.executable, "-m", "regapi", "serve", "--port", str(port),
                                "--store", s.url], stdout=log, stderr=subprocess.STDOUT)
    http = requests.Session()
    http.trust_env = False
    deadline = time.time() + 20
    try:
        while True:
            try:
                if http.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 404:
                    break
            except requests.ConnectionError:
                assert time.time() < deadline and s.p.poll() is None
                time.sleep(0.05)
    finally:
        http.close()
    s.got = {}

    def pay():
        try:
            s.got["r"] = requests.get(f"http://127.0.0.1:{port}/api/demo/pay",
                                      params={"id": s.order["id"], "openid": "o1"},
                                      timeout=40)
        except requests.RequestException as e:
            s.got["e"] = e

    s.pay = threading.Thread(target=pay)
    return s


def _stop(s):
    if s.p.poll() is None:
        s.p.kill()
        s.p.wait()
    s.st.close()


def _wait_log(s, text, timeout=10.0):
    deadline = time.time() + timeout
    while text not in s.log.read_text(errors="replace"):
        assert time.time() < deadline, s.log.read_text(errors="replace")
        time.sleep(0.05)


def test_sigterm_finishes_the_request_in_flight(tmp_path):
    key, appid, mch = secrets.token_hex(16), "wx" + secrets.token_hex(8), "1900000777"
    with Simulator(merchants=[(appid, mch, key)]) as sim:
        s = _start(tmp_path, sim, appid, mch, key)
        try:
            sim.set_faults({"latency": 1.5})           # WeChat is slow to answer
            s.pay.start()
            time.sleep(0.5)                              # the request is in flight
            s.p.send_signal(signal.SIGTERM)
            assert s.p.wait(timeout=30) == 0
            s.pay.join(timeout=30)
            assert s.got["r"].status_code == 200 and "prepay_id=" in s.got["r"].json()["package"]
            assert s.st.get(s.order["id"]).get("pay_jsobj")
            assert "graceful shutdown, 1 request in flight" in s.log.read_text()
        finally:
            _stop(s)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_second_signal_stops_at_once(tmp_path, sig):
    key, appid, mch = secrets.token_hex(16), "wx" + secrets.token_hex(8), "1900000778"
    with Simulator(merchants=[(appid, mch, key)]) as sim:
        s = _start(tmp_path, sim, appid, mch, key)
        try:
            sim.set_faults({"latency": 25})            # WeChat hangs (the deadline is 30 s)
            s.pay.start()
            time.sleep(0.8)
            s.p.send_signal(sig)
            _wait_log(s, "graceful shutdown, 1 request in flight")
            time.sleep(0.5)
            assert s.p.poll() is None                    # still waiting for the request
            t0 = time.monotonic()
            s.p.send_signal(sig)
            assert s.p.wait(timeout=10) == 128 + sig     # not the 35 s kill timeout
            assert time.monotonic() - t0 < 5
            assert "stopping now, 1 request cut off" in s.log.read_text()
            s.pay.join(timeout=10)
            assert "e" in s.got or s.got["r"].status_code >= 500   # cut off, not answered
        finally:
            _stop(s)


# ---- the count itself (regapi.server.InFlight, what the shutdown line reports) ----------
def _in_flight_round(counted, impl, inflight, n):
    """``n`` threads inside ``counted`` at once: the total seen then, and after."""
    import os
    inside, go = threading.Barrier(n + 1), threading.Event()

    def app(environ, start_response):
        inside.wait()
        go.wait()
        return [b""]
    impl[0] = app
    ts = [threading.Thread(target=counted, args=({}, None)) for _ in range(n)]
    for t in ts:
        t.start()
    inside.wait()
    during = inflight.total({os.getpid()})
    go.set()
    for t in ts:
        t.join()
    return during, inflight.total({os.getpid()})


@pytest.mark.parametrize("threads", [1, 4])
def test_in_flight_is_counted_exactly_with_more_threads_than_cells(threads):
    """Each request thread has a cell of its own (threads + 8 of them); threads beyond
    that count under a lock; a thread that ended frees its cell for the next ones."""
    import gc
    import os

    from regapi.server import InFlight
    inflight = InFlight(1, threads)
    impl = [None]
    counted = inflight.wrap(lambda environ, start_response: impl[0](environ, start_response))
    cells = threads + InFlight.SPARE_CELLS
    for n in (1, cells, cells + 5, cells + 5, 2):   # the same cells, round after round
        gc.collect()
        assert _in_flight_round(counted, impl, inflight, n) == (n, 0)
    assert inflight.total({os.getpid() + 1}) == 0       # another worker's: not ours
