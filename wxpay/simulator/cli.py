"""``wxpay-sim`` / ``python -m wxpay.simulator``: the simulator as a process."""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading

from .core import Simulator
from .state import is_loopback_host


def _merchant(text: str):
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError("expected APPID:MCH_ID:KEY")
    return tuple(parts)


def _schedule(text: str):
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("expected seconds like 0.2,0.2,0.5") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("retry pauses cannot be negative")
    return values


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="wxpay-sim", description="Loopback simulator of the WeChat Pay v2 API.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--merchant", action="append", type=_merchant, default=[],
                    metavar="APPID:MCH_ID:KEY", help="repeatable")
    ap.add_argument("--allow-remote", action="store_true",
                    help="allow a non-loopback host and non-loopback notify_url")
    ap.add_argument("--retry-schedule", type=_schedule, default=(0.2, 0.2, 0.5, 1, 2),
                    metavar="S,S,...", help="pauses between notification attempts")
    ap.add_argument("--hold", type=float, default=15.0,
                    help="seconds the 'timeout' fault holds a reply")
    ap.add_argument("--verbose", action="store_true", help="log requests (no bodies)")
    ap.add_argument("--secure-port", type=int, default=0,
                    help="port of the TLS listener for /secapi/ (0 picks a free one)")
    ap.add_argument("--no-tls", action="store_true", help="no TLS listener (no refunds)")
    ap.add_argument("--certs-dir", metavar="DIR", default=None,
                    help="write DIR/<mch_id>/{apiclient_cert.p12 (password mch_id), "
                         "apiclient_cert.pem, apiclient_key.pem, wxpay_ca.pem} for each "
                         "merchant: test certificates of this process's CA")
    ap.add_argument("--v3-merchants", metavar="FILE", default=None,
                    help="JSON list of v3 merchants served on the same port (/v3/...): "
                         "[{mchid, appids, serial_no, public_key_file, sign_with?}]; "
                         "their APIv3 keys from WXPAY_V3_SIM_APIV3_KEYS=MCHID:KEY,...")
    ap.add_argument("--v3-export", metavar="DIR", default=None,
                    help="write the v3 side's platform_cert.pem, wechatpay_pubkey.pem "
                         "and wechatpay_pubkey_id.txt here")
    args = ap.parse_args(argv)
    # keys can also come from the environment, so they stay out of `ps` listings
    for item in re.split(r"[\s,]+", os.environ.get("WXPAY_SIM_MERCHANTS", "").strip()):
        if item:
            try:
                args.merchant.append(_merchant(item))
            except argparse.ArgumentTypeError:
                ap.error("WXPAY_SIM_MERCHANTS holds an entry that is not APPID:MCH_ID:KEY")
    if not args.merchant and not args.v3_merchants:
        ap.error("give at least one --merchant APPID:MCH_ID:KEY "
                 "(or WXPAY_SIM_MERCHANTS), or --v3-merchants FILE")
    if not args.allow_remote and not is_loopback_host(args.host):
        ap.error(f"refusing non-loopback host {args.host} without --allow-remote")
    try:
        sim = Simulator(host=args.host, port=args.port, merchants=args.merchant,
                        retry_schedule=args.retry_schedule, allow_remote=args.allow_remote,
                        hold=args.hold, verbose=args.verbose, tls=not args.no_tls,
                        secure_port=args.secure_port)
        v3_names = _mount_v3(sim, args) if args.v3_merchants else []
        sim.start()
    except _V3LoadError as e:
        print(f"wxpay-sim: cannot load v3 merchants: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"wxpay-sim: cannot listen on {args.host}:{args.port}: {e.strerror}",
              file=sys.stderr)
        return 1
    done = threading.Event()

    def _quit(*_):
        done.set()

    signal.signal(signal.SIGTERM, _quit)
    signal.signal(signal.SIGINT, _quit)
    if args.certs_dir and not args.no_tls:
        from .certs import write_merchant_files
        for _, mch_id, _ in args.merchant:
            write_merchant_files(os.path.join(args.certs_dir, mch_id), mch_id)
    print(f"wxpay-sim listening on {sim.url} merchants: "
          + ", ".join(f"{a}/{m}" for a, m, _ in args.merchant)
          + ("" if args.no_tls else f" secapi: {sim.secure_url}")
          + (f" certs: {args.certs_dir}" if args.certs_dir and not args.no_tls else "")
          + (f" v3 merchants: {', '.join(v3_names)}" if v3_names else ""),
          flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


class _V3LoadError(Exception):
    pass


def _mount_v3(sim: Simulator, args) -> list[str]:
    """The v3 merchants of ``--v3-merchants`` on ``sim.v3`` (made here)."""
    from ..errors import WxPayError
    from ..v3.simserver import _load_merchants
    from ..v3.simulator import V3Simulator
    keys = {}
    for item in re.split(r"[\s,]+", os.environ.get("WXPAY_V3_SIM_APIV3_KEYS", "").strip()):
        if item:
            mchid, _, key = item.partition(":")
            keys[mchid] = key
    sim.v3 = V3Simulator(retry_schedule=sim.retry_schedule, allow_remote=sim.allow_remote,
                         hold=sim.hold)
    try:
        names = _load_merchants(sim.v3, args.v3_merchants, keys)
    except (OSError, ValueError, KeyError, WxPayError) as e:
        raise _V3LoadError(e.line() if isinstance(e, WxPayError) else type(e).__name__
                           + (f": {e}" if isinstance(e, ValueError) else "")) from None
    if args.v3_export:
        os.makedirs(args.v3_export, exist_ok=True)
        for name, text in (("platform_cert.pem", sim.v3.platform_certificate_pem()),
                           ("wechatpay_pubkey.pem", sim.v3.public_key_pem()),
                           ("wechatpay_pubkey_id.txt", sim.v3.public_key_id + "\n")):
            with open(os.path.join(args.v3_export, name), "w", encoding="ascii") as f:
                f.write(text)
    return names


if __name__ == "__main__":
    sys.exit(main())

