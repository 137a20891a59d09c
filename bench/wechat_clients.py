"""One WeChat Pay call, four HTTP clients: what the client machinery costs per call.

    python bench/wechat_clients.py [--n 2000]

The same signed unifiedorder POST, sequentially over one keep-alive connection, to
the stand-in WeChat Pay server (bench/wechat_standin.py, its own process, so its work
is not on this process's clock), through:

1. ``wxpay.client.Client.post_xml`` as it is: its own keep-alive connections, replies
   parsed by ``httptools`` (wxpay/keepalive.py), with the client's deadlines, body cap
   and checks;
2. a ``urllib3.PoolManager`` POST, the body read one socket read at a time (what the
   client used during issue 10), the status checked, nothing else;
3. a ``requests.Session`` POST (what the client used before issue 10, and what
   ``httpc`` still uses), the status checked, nothing else;
4. bare ``http.client`` on one connection (no deadline, no checks; its header parsing
   is the ``email`` package's, in Python).

Printed per call: wall ms and this process's CPU ms (the part a server worker pays
in Python), and the ratio to the first.
"""
from __future__ import annotations

import argparse
import http.client
import os
import secrets
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    a = ap.parse_args(argv)
    from pay_vs_peer import free_port, stop, wait_http
    from wxpay.account import Account
    from wxpay.api import build_unifiedorder
    from wxpay.client import Client
    from wxpay.xmlcodec import to_xml

    merchant = ("wx" + secrets.token_hex(8), "1900000999", secrets.token_hex(16))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "wsgi", "--factory", "--workers",
         "1", "--blocking-threads", "2", "--no-ws", "--host", "127.0.0.1", "--port",
         str(port), "--log-level", "warning", "bench.wechat_standin:app_factory"],
        cwd=ROOT, env=dict(os.environ, WXPAY_SIM_MERCHANTS=":".join(merchant)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(port, "/", proc)
        base = f"http://127.0.0.1:{port}"
        acct = Account(*merchant, notify_url="http://127.0.0.1:9/notify", api_base=base)
        body = to_xml(build_unifiedorder(acct, {
            "body": "bench", "out_trade_no": "clientbench1", "total_fee": 1,
            "openid": "o" + secrets.token_hex(8), "spbill_create_ip": "127.0.0.1"}))
        req_client = Client(acct)
        import requests
        rs = requests.Session()

        def via_requests(path, xml):
            r = rs.post(base + path, data=xml.encode(), timeout=(5, 10),
                        headers={"Content-Type": "text/xml; charset=utf-8"})
            assert r.status_code == 200
            return r.text
        import urllib3
        u3 = urllib3.PoolManager(maxsize=32, retries=False).connection_from_url(base)
        u3_timeout = urllib3.Timeout(connect=5, read=10)

        def via_urllib3(path, xml):
            r = u3.urlopen("POST", path, body=xml.encode(), timeout=u3_timeout,
                           headers={"Content-Type": "text/xml; charset=utf-8"},
                           redirect=False, retries=False, preload_content=False)
            chunks = []
            while True:
                chunk = r.read1(8192)
                if not chunk:
                    break
                chunks.append(chunk)
            r.release_conn()
            assert r.status == 200
            return b"".join(chunks)
        hc = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def bare(path, xml):
            hc.request("POST", path, body=xml.encode(), headers={"Content-Type": "text/xml"})
            r = hc.getresponse()
            out = r.read()
            assert r.status == 200 and b"prepay_id" in out
            return out

        ways = [("wxpay.client (keep-alive, httptools)", req_client.post_xml),
                ("urllib3 PoolManager (during issue 10)", via_urllib3),
                ("requests.Session (before)", via_requests),
                ("bare http.client (no checks)", bare)]
        for _, fn in ways:                       # warm: connections, imports
            for _ in range(50):
                fn("/pay/unifiedorder", body)
        res = {}
        for rnd in range(2):                     # alternate, keep the best of two
            for name, fn in ways:
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(a.n):
                    out = fn("/pay/unifiedorder", body)
                wall = (time.perf_counter() - t0) / a.n * 1000
                cpu = (time.process_time() - c0) / a.n * 1000
                assert "prepay_id" in (out if isinstance(out, str) else out.decode())
                best = res.get(name)
                res[name] = (min(wall, best[0]), min(cpu, best[1])) if best else (wall, cpu)
        print(f"one unifiedorder call, {a.n} sequential calls on one keep-alive connection, "
              f"stand-in in its own process, {os.cpu_count()} CPUs (best of 2)")
        base_cpu = res[ways[0][0]][1]
        for name, _ in ways:
            wall, cpu = res[name]
            print(f"  {name:38s} wall {wall:6.3f} ms   client CPU {cpu:6.3f} ms   "
                  f"CPU / wxpay.client {cpu / base_cpu:5.2f}")
        req_client.close()
        rs.close()
        u3.close()
        hc.close()
        return 0
    finally:
        stop(proc)


if __name__ == "__main__":
    sys.exit(main())
