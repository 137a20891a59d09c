"""commands.weixin.sweeper: every account of every user swept; the process stops
with its parent."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time

from commands.weixin.sweeper import accounts, sweep_all
from wnshell.session import Session

from .conftest import OPENID, install_wxconf, make_order, run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_sweep_all_covers_every_account(store, sim, receiver):
    install_wxconf(store, sim.url, receiver.url)
    install_wxconf(store, sim.url, receiver.url, name="second")
    install_wxconf(store, sim.url, receiver.url, user="alice")
    assert sorted(accounts(store)) == [("alice", "xxx"), ("demo", "second"),
                                       ("demo", "xxx")]
    order = make_order(store, "sw")
    sh = Session(store, user="demo")
    assert run(sh, f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 "
                   f"-openid {OPENID}")[0] == 0
    store.set_meta(order.id, {"pay_expire_at": int(time.time() * 1000) - 1})
    err = io.StringIO()
    assert sweep_all(store, err) == 1          # one account owns it; it is closed once
    assert store.get(order.id)["pay_closed"]["by"] == "sweep"
    assert f'"id": "{order.id}"' in err.getvalue()
    assert sweep_all(store, io.StringIO()) == 0


def test_the_sweeper_stops_when_its_parent_is_gone(tmp_path):
    url = f"sqlite://{tmp_path / 'store.db'}"
    # a parent that starts the sweeper and exits at once
    parent = subprocess.run(
        [sys.executable, "-c",
         "import os, subprocess, sys; p = subprocess.Popen([sys.executable, '-m', "
         "'commands.weixin.sweeper', '--store', sys.argv[1], '--interval', '30', "
         "'--parent', str(os.getpid())], "
         "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
         "print(p.pid)", url],
        capture_output=True, text=True, timeout=30, cwd=ROOT)
    pid = int(parent.stdout.strip())
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # a zombie of an exited parent is reaped by init; check its state too
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split()[2] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.2)
    os.kill(pid, 9)
    raise AssertionError("the sweeper outlived its parent")
