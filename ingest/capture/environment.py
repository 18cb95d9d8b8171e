"""The capture environment as recorded in ``environment.json``: software versions, the clock
offset against the time-stamping authority, proxy variables and hosts-file lines touching
the targets, DNS answers, TLS chains, the redirect chain, refusals and failures."""

from __future__ import annotations

import os
import platform
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from asn1crypto import cms

from archive.models import utcnow

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy")


def clock_offset(timestamper: Any) -> dict[str, Any]:
    """This host's clock against the TSA: a time-stamp over a fresh nonce, compared with the
    local clock before and after (offset = TSA time - local midpoint, in seconds)."""
    from signing.tsa import timestamp_digest

    before = datetime.now(timezone.utc)
    token = cms.ContentInfo.load(timestamp_digest(timestamper, digest=os.urandom(32)))
    after = datetime.now(timezone.utc)
    tsa_time = token["content"]["encap_content_info"]["content"].parsed["gen_time"].native
    middle = before + (after - before) / 2
    return {"local_before": before.isoformat(), "local_after": after.isoformat(), "tsa_time": tsa_time.isoformat(),
            "offset_seconds": round((tsa_time - middle).total_seconds(), 3),
            "uncertainty_seconds": round((after - before).total_seconds() / 2 + 1.0, 3),
            "note": "RFC 3161 genTime has one-second precision here; the offset is within the uncertainty"}


def _masked(value: str) -> str:
    parts = urlsplit(value)
    if parts.password:
        return value.replace(f":{parts.password}@", ":***@")
    return value


def proxy_environment() -> dict[str, str]:
    """Proxy variables set for this process (passwords masked). The capture ignores them:
    it connects directly, through its own recording proxy only."""
    return {k: _masked(v) for k, v in os.environ.items() if k.lower() in PROXY_VARIABLES}


def hosts_entries(hosts: set[str], path: Path = Path("/etc/hosts")) -> list[str]:
    """Lines of the hosts file that name one of ``hosts``."""
    try:
        lines = path.read_text("utf-8", "replace").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        names = line.split("#", 1)[0].split()[1:]
        if any(n.lower() in hosts for n in names):
            out.append(line.strip())
    return out


def dns_answers(hosts: set[str]) -> dict[str, list[str]]:
    """Every address the resolver gives for each host (refused ones included)."""
    out: dict[str, list[str]] = {}
    for host in sorted(hosts):
        try:
            out[host] = sorted({i[4][0] for i in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})
        except OSError as exc:
            out[host] = [f"error: {exc.strerror or exc}"]
    return out


def os_release() -> str:
    """PRETTY_NAME of /etc/os-release, else the platform string."""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def describe(*, hosts: set[str], browser_version: str, clock: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The environment record of one capture."""
    import playwright
    import warcio

    from importlib.metadata import version

    return {
        "recorded_at": utcnow().isoformat(),
        "host": {"name": socket.gethostname(), "os": os_release(), "kernel": platform.release(),
                 "machine": platform.machine(), "python": sys.version.split()[0]},
        "software": {"browser": browser_version, "playwright": version("playwright"),
                     "warcio": version("warcio"), "wacz": version("wacz"),
                     "playwright_module": getattr(playwright, "__file__", ""), "warcio_module": warcio.__name__},
        "clock": clock,
        "proxy_environment": proxy_environment(),
        "hosts_file_entries": hosts_entries({h.lower() for h in hosts}),
        "dns": dns_answers(hosts),
        **extra,
    }
