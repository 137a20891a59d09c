"""The peer of bench/pay_vs_peer.py: the seed's two pay APIs as a Python developer would
write them without wnshell (Flask + wechatpy + SQLite).  See app.py."""
