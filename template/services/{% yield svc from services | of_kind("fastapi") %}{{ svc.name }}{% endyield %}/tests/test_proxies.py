"""TRUSTED_PROXIES: X-Forwarded-For is believed from the frontends' proxies only."""

import json

import pytest

from app.core.proxies import TrustedProxies
from tests.conftest import running


async def test_only_a_trusted_peer_may_name_the_client() -> None:
    proxies = TrustedProxies(["10.0.0.0/24", "192.168.1.7", "localhost"])
    await proxies.start()
    try:
        assert proxies.client("10.0.0.5", "1.2.3.4") == "1.2.3.4"
        assert proxies.client("192.168.1.7", "9.9.9.9, 1.2.3.4") == "1.2.3.4"  # the last hop
        assert proxies.client("127.0.0.1", "1.2.3.4") == "1.2.3.4"  # localhost, resolved
        assert proxies.client("10.0.1.5", "1.2.3.4") is None  # outside the network
        assert proxies.client("10.0.0.5", "not an address") is None
    finally:
        await proxies.stop()
    assert TrustedProxies([]).client("127.0.0.1", "1.2.3.4") is None


@pytest.mark.parametrize(
    ("trusted", "peer", "bucket_shared"),
    [
        ("", "127.0.0.1", True),  # nobody trusted: every forged header is the same peer
        ("10.1.2.3", "127.0.0.1", True),  # a direct client is no trusted proxy
        ("127.0.0.1", "127.0.0.1", False),  # through the proxy: each real client its own
    ],
)
async def test_a_forged_x_forwarded_for_does_not_buy_a_fresh_bucket(
    make_settings, trusted: str, peer: str, bucket_shared: bool
) -> None:
    settings = make_settings(general_rate_limit="3/minute", trusted_proxies=trusted)
    async with running(settings, client_ip=peer) as (_, client):
        codes = []
        for n in range(5):
            response = await client.get(
                "/api/v1/users/me", headers={"X-Forwarded-For": f"203.0.113.{n}"}
            )
            codes.append(response.status_code)
    assert (429 in codes) is bucket_shared, codes


async def test_the_request_log_names_the_forwarded_client(make_settings, capsys) -> None:
    async with running(make_settings(trusted_proxies="127.0.0.1")) as (_, client):
        await client.get("/health", headers={"X-Forwarded-For": "198.51.100.9"})
    out = capsys.readouterr().out.splitlines()
    lines = [json.loads(line) for line in out if line.startswith("{")]
    requests = [line for line in lines if line.get("path") == "/health"]
    assert [line["client"] for line in requests] == ["198.51.100.9"]


def test_settings_split_the_list(make_settings) -> None:
    settings = make_settings(trusted_proxies=" frontend, 10.0.0.0/8 ,,")
    assert settings.trusted_proxy_list == ["frontend", "10.0.0.0/8"]
