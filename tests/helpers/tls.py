"""Certificates made in the test (trustme): a CA, a certificate for the loopback
names it issued, and the contexts or PEM files the server and the client need."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import NamedTuple

import trustme

from nettools.green import ssl as gssl

LOOPBACK_NAMES = ("127.0.0.1", "localhost")


class CertFiles(NamedTuple):
    ca: Path
    cert: Path  # the certificate chain
    key: Path


class Certs:
    """A fresh CA and a server certificate for ``names`` it issued."""

    def __init__(self, *names: str) -> None:
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert(*(names or LOOPBACK_NAMES))

    def server_context(self, green: bool = True) -> ssl.SSLContext:
        """A server context holding the certificate (green: ``nettools.green.ssl``)."""
        ctx = (gssl if green else ssl).SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.cert.configure_cert(ctx)
        return ctx

    def client_context(self, green: bool = False) -> ssl.SSLContext:
        """A client context that trusts the CA (default: a stdlib one)."""
        ctx = (gssl if green else ssl).create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    def write(self, directory: str | Path) -> CertFiles:
        """Write ``ca.pem``, ``cert.pem`` (the chain) and ``key.pem`` into ``directory``."""
        d = Path(directory)
        files = CertFiles(d / "ca.pem", d / "cert.pem", d / "key.pem")
        self.ca.cert_pem.write_to_path(str(files.ca))
        for i, pem in enumerate(self.cert.cert_chain_pems):
            pem.write_to_path(str(files.cert), append=i > 0)
        self.cert.private_key_pem.write_to_path(str(files.key))
        return files
