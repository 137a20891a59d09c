"""A loopback simulator of the WeChat Pay v2 merchant API (wechatpay-v2.md §2–§5, §7).

In-process::

    with Simulator(merchants=[("wx_app", "1900000001", KEY)]) as sim:
        client = Client(Account("wx_app", "1900000001", KEY, api_base=sim.url, ...))
        reply = client.unifiedorder(order)
        sim.pay(reply["prepay_id"])            # or POST {sim.url}/sim/pay
        sim.wait_notified(order["out_trade_no"])

Console: ``wxpay-sim --host 127.0.0.1 --port P --merchant APPID:MCH_ID:KEY`` (repeatable;
``python -m wxpay.simulator`` works too; the environment variable
``WXPAY_SIM_MERCHANTS="APPID:MCH_ID:KEY,..."`` adds merchants without showing keys in
``ps``).  It prints ``wxpay-sim listening on http://127.0.0.1:PORT ...`` once ready.

Endpoints:

* ``POST /pay/unifiedorder``, ``/pay/orderquery``, ``/pay/closeorder``: WeChat's checks
  and answers.  Failures before the merchant is authenticated (method, empty body,
  encoding, XML, appid, mch_id, signature) are ``return_code=FAIL`` with ``return_msg`` only
  (no sign, no err_code, as WeChat); later failures are signed
  ``result_code=FAIL`` replies with ``err_code``/``err_code_des``.  Replies are
  signed with the merchant key and the request's sign type.
* ``POST /sim/pay`` JSON ``{"prepay_id": "..."}`` (or ``{"out_trade_no": ...}``): the
  user pays; the signed notification goes to ``notify_url`` in the background,
  retried after each reply that is not SUCCESS on ``retry_schedule``.
* ``GET /sim/orders/<out_trade_no>``: the order's state and notification attempts.
* ``POST /sim/faults`` JSON (``{}`` clears): ``latency`` s; ``timeout`` (hold the reply
  ``hold`` s, default 15 > the client's 10 s read timeout; the request is processed);
  ``http_status`` N; ``html``; ``garbage``; ``fail_without_sign`` (a SUCCESS/FAIL
  SYSTEMERROR reply without sign); ``success_without_sign``; ``bad_sign``;
  ``return_fail``; ``systemerror``; ``err_code`` CODE; ``duplicate_notify`` N;
  ``concurrent_notify`` N; ``notify_latency`` s; ``count`` k (the next k uses only).

Compared on re-entry of an unpaid ``out_trade_no`` (WeChat's "same parameters"):
appid, body, detail, attach, total_fee, fee_type, trade_type, openid, product_id,
goods_tag, limit_pay, notify_url, time_expire, scene_info.  nonce_str, sign, sign_type,
time_start, spbill_create_ip and device_info may differ.  body/attach/detail are
limited in UTF-8 bytes (over: ``return_code=FAIL``, ``<name>参数长度有误``); a first
time_expire less than 5 minutes ahead is ``return_code=FAIL`` with WeChat's
``time_expire时间过短…``.  Trade types JSAPI (openid), NATIVE (product_id; reply
``code_url``), MWEB (scene_info; reply ``mweb_url``).  Notifications carry no
``sign_type`` (HMAC-SHA256 ones included, as WeChat sends them).

API v3 on the same port: ``sim.add_v3_merchant(...)`` mounts a
:class:`wxpay.v3.simulator.V3Simulator` as ``sim.v3`` (``/v3/*``, ``/sim/v3/*``;
``wxpay-sim --v3-merchants FILE``), so one merchant can be v2 and another v3.

Modules, along the seams: ``state`` (orders as WeChat keeps them), ``faults`` (the
``/sim/faults`` switches), ``protocol`` (``/pay/*``: checks and answers), ``notify``
(notifications and their retries), ``http`` (the HTTP front), ``core`` (the
:class:`Simulator`: merchants, clock, lifecycle), ``cli`` (``wxpay-sim``).
"""
from __future__ import annotations

from .cli import main
from .core import Simulator
from .state import is_loopback_host

__all__ = ["Simulator", "main", "is_loopback_host"]
