"""A v3 merchant's API key pair and certificate (its serial), generated for a test
run -- shared by the wxpay v3 tests and the weixin command tests."""
from __future__ import annotations

from wxpay.v3.crypto import private_pem, public_pem, serial_hex
from wxpay.v3.simkeys import new_certificate, new_key


class Merchant:
    """A merchant's API key pair and certificate (serial), generated once."""

    def __init__(self):
        self.key = new_key()
        self.cert = new_certificate(self.key, common_name="merchant")
        self.serial = serial_hex(self.cert)
        self.pem = private_pem(self.key)
        self.public = public_pem(self.key)
