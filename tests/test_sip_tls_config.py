"""The SIP security settings and the front's TLS config (fast: no calls)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

from callcenter.certs import ensure_certs
from telephony.kamailio import (
    FrontError,
    FrontTls,
    KamailioFront,
    Worker,
    front_tls,
    render_config,
)
from telephony.settings import SipSettings
from telephony.test_caller import secure_settings, tls_uri
from tests.sip_tools import needs_kamailio_tls


def test_require_tls_needs_a_tls_port_and_cert_goes_with_key() -> None:
    with pytest.raises(ValidationError, match="tls_port"):
        SipSettings(require_tls=True)
    with pytest.raises(ValidationError, match="front"):
        SipSettings(tls_port=5061, require_tls=True, front="none")
    with pytest.raises(ValidationError, match="tls_key"):
        SipSettings(tls_port=5061, tls_cert=Path("c.pem"))
    assert SipSettings().srtp == "off" and SipSettings().tls_port is None  # plain by default


def test_front_tls_from_settings(tmp_path: Path) -> None:
    assert front_tls(SipSettings()) is None
    with pytest.raises(FrontError, match="tls_cert"):
        front_tls(SipSettings(tls_port=5061))
    tls = front_tls(SipSettings(tls_port=5061, tls_cert=tmp_path / "c", tls_key=tmp_path / "k", require_tls=True))
    assert tls == FrontTls(5061, tmp_path / "c", tmp_path / "k", True)


def test_rendered_config_listens_on_tls_and_refuses_clear_text_only_when_required(tmp_path: Path) -> None:
    plain = render_config("127.0.0.1", 5060, tmp_path)
    assert "listen=tls" not in plain and "tls.so" not in plain
    assert "if (0 && $pr != \"tls\"" in plain
    tls = FrontTls(5061, tmp_path / "c.pem", tmp_path / "k.pem", require=True)
    text = render_config("127.0.0.1", 5060, tmp_path, tls=tls)
    assert "listen=tls:127.0.0.1:5061" in text and 'alias="127.0.0.1:5061"' in text
    assert "if (1 && $pr != \"tls\"" in text


@needs_kamailio_tls
def test_kamailio_accepts_the_tls_config(tmp_path: Path) -> None:
    certs = ensure_certs(tmp_path / "certs", ["127.0.0.1"])
    front = KamailioFront("127.0.0.1", 5060, [Worker("127.0.0.1", 5070)], tmp_path / "run",
                          tls=FrontTls(5061, certs.cert, certs.key, True))
    front.write_config()
    assert f"certificate = {certs.cert}" in (tmp_path / "run" / "tls.cfg").read_text()
    asyncio.run(front.check())  # kamailio -c


def test_test_phone_settings() -> None:
    sip = secure_settings(SipSettings(), tls=True, srtp="mandatory", ca=Path("ca.pem"))
    assert sip.tls_port == 0 and sip.srtp == "mandatory" and sip.tls_ca == Path("ca.pem")
    assert secure_settings(SipSettings(srtp="optional"), tls=False, srtp=None, ca=None).srtp == "optional"
    assert tls_uri("sip:ivr@h:5061") == "sip:ivr@h:5061;transport=tls"
    assert tls_uri("sip:ivr@h:5061;transport=tcp") == "sip:ivr@h:5061;transport=tcp"
