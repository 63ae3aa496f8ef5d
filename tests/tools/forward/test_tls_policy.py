"""The forwarder's TLS from clients holds to the policy of every nettools TLS server
(nettools.tlsguard): TLS 1.2 at least, and handshakes in progress bounded."""

from __future__ import annotations

import ssl
import warnings

import pytest
from helpers.green import settle
from helpers.sockets import Target, echo_handler
from helpers.tls import Certs

import nettools
from nettools.green import socket as gsocket
from nettools.tools.forward import Forwarder, Rule, resolve_target

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"


@pytest.fixture
def target():
    t = Target(echo_handler)
    yield t
    t.close()


def start(target: Target, ctx: ssl.SSLContext, **options) -> Forwarder:
    rule = Rule(nettools.listen((LOCAL, 0)), resolve_target(LOCAL, target.port))
    return Forwarder([rule], tls_context=ctx, **options).start()


def allowing_tls_1_0(ctx: ssl.SSLContext) -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def test_a_context_that_allows_old_tls_is_held_to_tls_1_2(target):
    certs = Certs()
    fwd = start(target, allowing_tls_1_0(certs.server_context()))
    try:
        old = nettools.green.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
        allowing_tls_1_0(old)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        with gsocket.create_connection(fwd.addresses[0], timeout=10) as raw:
            with pytest.raises(ssl.SSLError):
                old.wrap_socket(raw).close()
    finally:
        fwd.stop(0)


def test_handshakes_in_progress_are_bounded_and_a_real_client_gets_through(target):
    certs = Certs("127.0.0.1")
    fwd = start(target, certs.server_context(), connect_timeout=60)
    silent = []
    try:
        for _ in range(fwd.handshakes.limit + 20):
            silent.append(gsocket.create_connection(fwd.addresses[0], timeout=10))
        settle()
        assert len(fwd.handshakes) == fwd.handshakes.limit
        raw = gsocket.create_connection(fwd.addresses[0], timeout=10)
        with certs.client_context(green=True).wrap_socket(raw, server_hostname=LOCAL) as tls:
            tls.sendall(b"through")
            assert tls.recv(7) == b"through"
        assert fwd.handshakes.cut > 0
    finally:
        for sock in silent:
            sock.close()
        fwd.stop(0)
