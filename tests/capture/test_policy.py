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


def test_why_a_capture_did_not_finish_is_said_in_chinese_in_the_record() -> None:
    """The inspection keeps why its capture did not finish in English (its API returns it so);
    the record, a Chinese document, says it in Chinese: the policy's and the fetcher's reasons
    too, nested as they are, and the browser's, ffmpeg's and the network's own words quoted."""
    import re

    from archive.i18n.messages import MESSAGES
    from archive.inspections.policy import POLICY_REFUSALS
    from ingest.capture.browser import CAPTURE_PROBLEMS
    from ingest.capture.fetch import FETCH_PROBLEMS
    from ingest.capture.proxy import PROXY_ANSWERS
    from ingest.capture.run import problem_said

    for table in (CAPTURE_PROBLEMS, POLICY_REFUSALS, FETCH_PROBLEMS, PROXY_ANSWERS):
        for code, template in table.templates.items():
            entry = MESSAGES[f"{table.family}.{code}"]
            assert entry["en"] == template
            assert set(re.findall(r"{(\w+)}", entry["zh"])) == table.placeholders(code)
    policy = CapturePolicy()
    refusals = []
    for address in ("127.0.0.1", "10.1.2.3", "169.254.169.254", "::1"):
        with pytest.raises(Refused) as refused:
            policy.check(address, 80)
        refusals.append(refused.value.reason)
    with pytest.raises(Refused) as unresolved:
        policy.resolve("no-such-host.invalid", 80)
    with pytest.raises(Refused) as inner:
        policy.resolve("localhost", 80)
    said = {
        CAPTURE_PROBLEMS.say("refused", reason=refusals[0]): ["采集策略拒绝访问", "127.0.0.1 是回环地址"],
        CAPTURE_PROBLEMS.say("refused", reason=refusals[1]): ["10.1.2.3 是私有网络地址"],
        CAPTURE_PROBLEMS.say("refused", reason=refusals[2]): ["169.254.169.254 是链路本地地址"],
        CAPTURE_PROBLEMS.say("refused", reason=refusals[3]): ["::1 是回环地址"],
        CAPTURE_PROBLEMS.say("refused", reason=unresolved.value.reason): ["no-such-host.invalid 无法解析："],
        CAPTURE_PROBLEMS.say("refused", reason=inner.value.reason): ["localhost 的地址不可访问：", "是回环地址"],
        CAPTURE_PROBLEMS.say("failed", reason=FETCH_PROBLEMS.say(
            "unreachable", host="127.0.0.1", detail="[Errno 111] Connection refused")):
            ["无法取得：127.0.0.1：[Errno 111] Connection refused"],
        CAPTURE_PROBLEMS.say("failed", reason=FETCH_PROBLEMS.say("response_limit", limit=1024)): ["响应超过 1024 字节"],
        CAPTURE_PROBLEMS.say("navigation_failed", detail="net::ERR_NAME_NOT_RESOLVED at http://x.invalid/"):
            ["浏览器未能打开页面：net::ERR_NAME_NOT_RESOLVED at http://x.invalid/"],
        CAPTURE_PROBLEMS.say("screenshot_failed", moment="end", detail="Timeout 30000ms exceeded."):
            ["结束时截图失败：Timeout 30000ms exceeded."],
        CAPTURE_PROBLEMS.say("stream_failed", detail="ffmpeg could not record the stream"):
            ["直播录制失败：ffmpeg could not record the stream"],
    }
    for stored, words in said.items():
        zh = problem_said("zh", stored)
        assert all(w in zh for w in words), (stored, zh)
        assert not re.search(r"refused|failed|address|resolve|larger than|screenshot at", zh.split("：", 1)[0]), zh
        assert "is a" not in zh and "resolves to" not in zh and "does not resolve" not in zh, zh
        assert problem_said("en", stored) == stored
    assert problem_said("zh", "a reason worded otherwise") == "a reason worded otherwise"
