"""The capture's SSRF policy, without a browser."""

from __future__ import annotations

import pytest

from archive.errors import InvalidInput
from archive.inspections.policy import CapturePolicy, Refused, parse_networks
from archive.settings import Settings


@pytest.mark.parametrize("address, what", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"), ("192.168.0.9", "private"),
    ("172.16.5.5", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"), ("::ffff:127.0.0.1", "loopback"), ("224.0.0.1", "multicast"),
])
def test_default_policy_refuses_inner_addresses(address: str, what: str) -> None:
    with pytest.raises(Refused, match=what):
        CapturePolicy().check(address, 80)


def test_public_addresses_pass_and_allowed_networks_open_only_themselves() -> None:
    CapturePolicy().check("93.184.216.34", 443)
    policy = CapturePolicy(allowed=parse_networks("127.0.0.0/8, 10.9.0.0/16"))
    policy.check("127.0.0.5", 80)
    policy.check("10.9.1.1", 80)
    with pytest.raises(Refused, match="private"):
        policy.check("10.8.1.1", 80)


def test_own_service_endpoints_stay_refused_even_when_allowed() -> None:
    settings = Settings(capture_allow_networks="127.0.0.0/8", database_url="postgresql://u:p@127.0.0.1:5432/db",
                        s3_endpoint="127.0.0.1:9000", broker_url="redis://localhost:6379/0")
    policy = CapturePolicy.from_settings(settings)
    for port in (5432, 9000, 6379):
        with pytest.raises(Refused, match="archive's own services"):
            policy.check("127.0.0.1", port)
    policy.check("127.0.0.1", 8080)


def test_names_resolving_only_to_refused_addresses_are_refused() -> None:
    with pytest.raises(Refused, match="localhost resolves to .*loopback"):
        CapturePolicy().resolve("localhost", 80)
    with pytest.raises(Refused, match="does not resolve"):
        CapturePolicy().resolve("no-such-host.invalid", 80)


def test_bad_allow_list_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(InvalidInput, match="not a CIDR"):
        parse_networks("127.0.0.0/8, banana")
    with pytest.raises(ValidationError, match="not a CIDR"):
        Settings(capture_allow_networks="banana")
