"""The WeChat Pay stand-in of the pay benchmarks: the project's simulator logic
(``wxpay.simulator.Simulator.handle_pay``: the same checks, signatures and answers as
``wxpay-sim``) served by granian instead of the simulator's own ThreadingHTTPServer,
whose thread per connection would bound the rate of both sides under load.

    WXPAY_SIM_MERCHANTS=APPID:MCH_ID:KEY granian --interface wsgi --factory \
        bench.wechat_standin:app_factory

Only ``POST /pay/unifiedorder|orderquery|closeorder``; one worker (the simulator keeps
its orders in memory).  Loopback only, like the simulator.
"""
from __future__ import annotations

import os

from wxpay.simulator import Simulator

MAX_BODY = 64 * 1024
_ENDPOINTS = {"/pay/unifiedorder": "unifiedorder", "/pay/orderquery": "orderquery",
              "/pay/closeorder": "closeorder"}


def app_factory():
    merchants = []
    for item in os.environ.get("WXPAY_SIM_MERCHANTS", "").split(","):
        if item.strip():
            merchants.append(tuple(item.strip().split(":", 2)))
    sim = Simulator(merchants=merchants)

    def app(environ, start_response):
        endpoint = _ENDPOINTS.get(environ.get("PATH_INFO", ""))
        if endpoint is None:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = -1
        if not 0 <= size <= MAX_BODY:
            start_response("400 Bad Request", [("Content-Length", "0")])
            return [b""]
        body = environ["wsgi.input"].read(size) if size else b""
        status, out, ctype = sim.handle_pay(endpoint, environ["REQUEST_METHOD"], body)
        start_response(f"{status} OK" if status == 200 else f"{status} Error",
                       [("Content-Type", ctype), ("Content-Length", str(len(out)))])
        return [out]

    return app
