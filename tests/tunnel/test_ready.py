"""Ready-line URLs (advertise host rules) and the TLS context."""

from __future__ import annotations

import ssl
from dataclasses import replace

import pytest

from flowersec_tunnel.config import ConfigError, TunnelConfig
from flowersec_tunnel.server import TunnelServer, parse_listen, tls_context


def ready(advertise: str, *, metrics: str = "", tls: bool = False) -> dict[str, str]:
    cfg = TunnelConfig(advertise_host=advertise)
    if tls:
        cfg = replace(cfg, tls_cert_file="c", tls_key_file="k")
    server = TunnelServer(cfg, {})
    server.listen = "0.0.0.0:8080"
    server.metrics_listen = metrics
    return server.ready_fields()


@pytest.mark.parametrize(
    ("advertise", "ws_url"),
    [
        ("", "ws://0.0.0.0:8080/ws"),
        ("tunnel.example.com", "ws://tunnel.example.com:8080/ws"),
        ("tunnel.example.com:443", "ws://tunnel.example.com:443/ws"),
        ("https://tunnel.example.com", "ws://tunnel.example.com:8080/ws"),
        ("https://tunnel.example.com:9443/x", "ws://tunnel.example.com:9443/ws"),
        ("::1", "ws://[::1]:8080/ws"),
        ("[::1]", "ws://[::1]:8080/ws"),
        ("  host  ", "ws://host:8080/ws"),
    ],
)
def test_advertise_host(advertise: str, ws_url: str) -> None:
    fields = ready(advertise)
    assert fields["ws_url"] == ws_url
    assert fields["healthz_url"] == ws_url.replace("ws://", "http://")[:-3] + (
        "/healthz"
    )
    assert ("advertise_host" in fields) == bool(advertise)


def test_metrics_url_and_tls_schemes() -> None:
    fields = ready("edge.example:443", metrics="127.0.0.1:9090", tls=True)
    assert fields["ws_url"] == "wss://edge.example:443/ws"
    assert fields["metrics_url"] == "https://edge.example:9090/metrics"
    assert list(fields)[-1] == "metrics_url"


def test_unparsable_advertise_url() -> None:
    with pytest.raises(ConfigError):
        ready("https://")


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen(":8080") == (None, 8080)
    assert parse_listen("[::1]:80") == ("::1", 80)
    assert parse_listen("host:") == ("host", 0)
    for bad in ("nonsense", "host:99999", "host:http", "::1"):
        with pytest.raises(ConfigError):
            parse_listen(bad)


def test_tls_context_needs_loadable_files(tmp_path: object) -> None:
    assert tls_context(TunnelConfig()) is None
    with pytest.raises(ConfigError):
        tls_context(TunnelConfig(tls_cert_file="/nope", tls_key_file="/nope"))


def test_tls_minimum_version(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[tuple[str, str]] = []
    monkeypatch.setattr(
        ssl.SSLContext,
        "load_cert_chain",
        lambda self, cert, key: loaded.append((cert, key)),
    )
    ctx = tls_context(TunnelConfig(tls_cert_file="c", tls_key_file="k"))
    assert ctx is not None
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    assert loaded == [("c", "k")]
