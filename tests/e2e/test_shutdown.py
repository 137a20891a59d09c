"""SIGTERM: ``wnshell serve`` lets the request in flight finish (200), then exits 0."""
import secrets
import signal
import subprocess
import sys
import threading
import time

import requests

from objstore import open_store
from regapi.demo import PAY_API, WXCONF, free_port
from wxpay.simulator import Simulator


def test_sigterm_finishes_the_request_in_flight(tmp_path):
    url = f"sqlite://{tmp_path / 's.db'}"
    key, appid, mch = secrets.token_hex(16), "wx" + secrets.token_hex(8), "1900000777"
    port = free_port()
    with Simulator(merchants=[(appid, mch, key)]) as sim:
        st = open_store(url)
        st.create("/home/demo/.regapi/api/pay", "FILE",
                  {"http-header-Content-Type": "application/json"}, parents=True,
                  content=PAY_API.encode())
        st.create("/home/demo/.weixin/xxx/wxconf", "FILE", parents=True, content=WXCONF.format(
            appid=appid, appsecret=secrets.token_hex(16), mch_id=mch, pay_key=key,
            notify_url=f"http://127.0.0.1:{port}/api/demo/payresult", api_base=sim.url).encode())
        order = st.create("/home/demo/orders/o1", "FILE",
                          {"openid": "o1", "total_fee": 5, "or_status": 0}, parents=True)
        with open(tmp_path / "log", "wb") as log:
            p = subprocess.Popen([sys.executable, "-m", "regapi", "serve", "--port", str(port),
                                  "--store", url], stdout=log, stderr=subprocess.STDOUT)
        http = requests.Session()
        http.trust_env = False
        try:
            deadline = time.time() + 20
            while True:
                try:
                    if http.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 404:
                        break
                except requests.ConnectionError:
                    assert time.time() < deadline and p.poll() is None
                    time.sleep(0.05)
            sim.set_faults({"latency": 1.5})           # WeChat is slow to answer
            got = {}

            def pay():
                got["r"] = requests.get(f"http://127.0.0.1:{port}/api/demo/pay",
                                        params={"id": order["id"], "openid": "o1"}, timeout=20)

            t = threading.Thread(target=pay)
            t.start()
            time.sleep(0.5)                              # the request is in flight
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=30) == 0
            t.join(timeout=30)
            assert got["r"].status_code == 200 and "prepay_id=" in got["r"].json()["package"]
            assert st.get(order["id"]).get("pay_jsobj")
        finally:
            http.close()
            if p.poll() is None:
                p.kill()
                p.wait()
            st.close()
