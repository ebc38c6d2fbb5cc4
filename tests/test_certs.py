"""``callcenter.certs``: the local CA's server certificate passes a real TLS handshake for each
name it was made for, and fails for another; keys are owner-only; a second call keeps them."""

from __future__ import annotations

import asyncio
import ssl
import stat
from pathlib import Path

import pytest

from callcenter.certs import ensure_certs


async def _handshake(paths, host: str) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(paths.cert, paths.key)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context(cafile=str(paths.ca_cert))
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx, server_hostname=host)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_server_certificate_is_trusted_for_its_names_only(tmp_path: Path) -> None:
    paths = ensure_certs(tmp_path / "certs", ("127.0.0.1", "localhost", "cc.example"))
    for host in ("127.0.0.1", "localhost", "cc.example"):
        await _handshake(paths, host)
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(paths, "other.example")
    for key in (paths.ca_key, paths.key, paths.client_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.directory.stat().st_mode) == 0o700
    before = paths.cert.read_bytes()
    assert ensure_certs(tmp_path / "certs").cert.read_bytes() == before  # kept
    assert ensure_certs(tmp_path / "certs", force=True).cert.read_bytes() != before
