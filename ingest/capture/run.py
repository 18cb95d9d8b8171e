"""One inspection, from the request to its sealed items: the worker task calls :func:`run_inspection`.

Order: the TSA's time at start (clock offset), the browser session through the recording
proxy (or the livestream), the WARC packaged as a WACZ signed with the e-seal, every file
received as evidence through the same path as an upload (the WACZ first, then its members:
screenshots, screen recording, environment JSON, stream recording), then the inspection
record PDF, PAdES-sealed, received as a document. A target that is refused or unreachable
still goes through all of this: what was recorded is kept and the inspection ends
``failed`` with the reason.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from archive import work as work_reasons
from archive.db import Database
from archive.errors import ArchiveError
from archive.evidence import receiving
from archive.inspections import service
from archive.i18n import enum_label, said, translate
from archive.inspections.policy import NOTHING, POLICY_REFUSALS, CapturePolicy
from archive.models import Case, EvidenceItem, EvidenceKind, User, utcnow
from archive.scratch import scratch_dir
from archive.seals.sealer import Sealer
from archive.settings import Settings
from archive.storage import ObjectStore
from ingest.capture.browser import CAPTURE_PROBLEMS, SCREEN_NOTE, PageSession, run_page
from ingest.capture.environment import clock_offset, describe
from ingest.capture.fetch import FETCH_PROBLEMS, Budget, Fetched, Fetcher
from ingest.capture.package import make_wacz
from ingest.capture.proxy import RecordingProxy
from ingest.capture.record import RecordFacts, write_record
from ingest.capture.stream import run_stream
from ingest.capture.warc import WarcLog
from signing.wacz import timestamp_time

TOOL = "evidence-archive remote inspection"
log = logging.getLogger(__name__)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            yield chunk


def run_inspection(*, db: Database, store: ObjectStore, settings: Settings, sealer: Sealer,
                   inspection_id: str) -> None:
    """Capture, package, seal and receive one inspection; idempotent (an interrupted one fails)."""
    req = service.start_capture(db, inspection_id)
    if req is None:
        return
    if req["status"] != "queued":
        service.finish(db, inspection_id, item_id=None, record_id=None,
                       error=service.INSPECTION_PROBLEMS.say("interrupted"))
        return
    with scratch_dir("inspect") as tmp:
        _capture(db=db, store=store, settings=settings, sealer=sealer, req=req, work=tmp)


def _capture(*, db: Database, store: ObjectStore, settings: Settings, sealer: Sealer, req: dict[str, Any],
             work: Path) -> None:
    clock = clock_offset(sealer.timestamper)
    policy = CapturePolicy.from_settings(settings)
    budget = Budget(max_total=settings.capture_max_bytes, max_response=settings.capture_max_response_bytes)
    fetcher = Fetcher(policy, budget, extra_roots=str(settings.capture_extra_roots)
                      if settings.capture_extra_roots else None)
    refused: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []
    exchanges: list[dict[str, Any]] = []
    warc = WarcLog(work / "capture.warc.gz", info={"software": TOOL, "format": "WARC File Format 1.1",
                                                  "isPartOf": f"inspection {req['id']}", "target": req["url"]})

    def record(f: Fetched) -> None:
        warc.exchange(f)
        exchanges.append({"url": f.url, "status": f.status, "peer": f.peer, "size": len(f.body),
                          "time": f.started.isoformat()})

    browser_own: list[str] = []
    with RecordingProxy(fetcher, record=record, refused=lambda u, r: refused.append({"url": u, "reason": r}),
                        failed=lambda u, r: failed.append({"url": u, "reason": r}),
                        browser_own=browser_own.append) as proxy:
        if req["mode"] == "stream":
            session = run_stream(url=req["url"], seconds=req["seconds"], workdir=work, fetcher=fetcher,
                                 record=record, policy=policy, budget=budget, settings=settings)
        else:
            session = run_page(url=req["url"], seconds=req["seconds"], cookies=req["cookies"], workdir=work,
                               proxy_port=proxy.port, browser_path=settings.capture_browser,
                               tools_dir=settings.data_dir / "capture-tools", warc=warc)
    fetcher.close()
    warc.close()
    hosts = {urlsplit(req["url"]).hostname or ""} | {urlsplit(e["url"]).hostname or "" for e in exchanges}
    hosts |= {urlsplit(r["url"]).hostname or "" for r in refused + failed}
    hosts.discard("")
    environment = describe(hosts=hosts, browser_version=session.browser_version, clock=clock, extra={
        "target": req["url"], "mode": req["mode"], "capture_start": session.started.isoformat(),
        "capture_end": (session.ended or utcnow()).isoformat(), "final_url": session.final_url,
        "redirects": session.redirects, "refused": refused, "failed": failed,
        "tls_chains": fetcher.tls, "connected": fetcher.dns, "exchanges": exchanges,
        "browser_own_requests_not_sent": browser_own,
        "downloads": session.downloads,
        "bytes_downloaded": budget.used, "limits": {"max_bytes": budget.max_total,
                                                     "max_response_bytes": budget.max_response},
        "cookies_supplied": sorted(c["name"] for c in req["cookies"]), "error": session.error,
        "screen_recording": SCREEN_NOTE if req["mode"] == "page" else None,
    })
    error = session.error
    service.mark_sealing(db, req["id"], summary={"error": error, "refused": refused, "failed": failed,
                                                "redirects": session.redirects})
    env_path = work / "environment.json"
    env_path.write_text(json.dumps(environment, ensure_ascii=False, indent=2, sort_keys=True), "utf-8")
    # The page is listed at the time of its first recorded response, so replay finds it; a
    # target that gave no response (refused, unreachable) is no page of the package.
    first = next((e["time"] for e in exchanges if e["url"] == req["url"]), None)
    lines = [{"format": "json-pages-1.0", "id": "pages", "title": "All Pages"}]
    if first is not None:
        lines.append({"id": uuid.uuid4().hex, "url": req["url"], "title": session.title or req["url"],
                      "ts": first.replace("+00:00", "Z")})
    pages = work / "pages.jsonl"
    pages.write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")
    wacz_path = work / "inspection.wacz"
    digest = make_wacz(warc=warc.path, pages=pages, output=wacz_path, url=req["url"] if first else None, title=session.title or "",
                       sign=lambda d, c: sealer.sign_wacz(d, c, software=TOOL))
    end_tsa = timestamp_time(base64.b64decode(digest["signedData"]["timeSignature"]))
    details = {"inspection": req["id"], "target_url": req["url"], "capture_start": session.started.isoformat(),
               "capture_end": (session.ended or utcnow()).isoformat(), "operator": req["user_id"], "tool": TOOL,
               "wacz_signed_at": end_tsa, "error": error}
    parent = _receive(db, store, settings, req, wacz_path, EvidenceKind.remote_capture, details,
                      recorded_start=session.started)
    service.keep_bundle(db, req["id"], item_id=parent.id)
    files = [(wacz_path.name, "WACZ", wacz_path.stat().st_size, parent.sha256)]
    members = [(p, "截图") for p in session.screenshots] + [(env_path, "环境信息")]
    if session.video is not None and session.video.exists():
        members.append((session.video, "录屏" if req["mode"] == "page" else "直播录制"))
    for path, role in members:
        child = _receive(db, store, settings, req, path, EvidenceKind.remote_capture,
                         {"inspection": req["id"], "bundle_member": path.name, "role": role},
                         parent_id=parent.id, recorded_start=session.started if role in ("录屏", "直播录制") else None)
        files.append((path.name, role, path.stat().st_size, child.sha256))
    try:
        record_id = _record(db=db, store=store, settings=settings, sealer=sealer, req=req, work=work, files=files,
                            clock=clock, end_tsa=end_tsa, environment=environment, session=session)
    except Exception as exc:
        # The bundle and its members are evidence already, and a retry could not capture the
        # same moment again: whatever kept the record from being made (a TSA outage included),
        # the inspection ends naming what it kept and why its record is missing.
        if isinstance(exc, ArchiveError):
            reason = exc.message
            log.warning("inspection %s: no record: %s", req["id"], reason)
        else:
            reason = work_reasons.STEP_REASONS.say("internal_error", error=type(exc).__name__)
            log.exception("inspection %s: the record could not be made", req["id"])
        service.finish(db, req["id"], item_id=parent.id, record_id=None,
                       error=service.INSPECTION_PROBLEMS.say("record_missing", item=parent.id, reason=reason))
        return
    service.finish(db, req["id"], item_id=parent.id, record_id=record_id, error=error)


def _receive(db: Database, store: ObjectStore, settings: Settings, req: dict[str, Any], path: Path,
             kind: EvidenceKind, details: dict[str, Any], *, parent_id: str | None = None,
             recorded_start: Any = None) -> EvidenceItem:
    incoming = receiving.IncomingEvidence(
        case_id=req["case_id"], kind=kind, filename=path.name, device_id=req["device_id"] if parent_id is None else None,
        recorded_start=recorded_start, details=details, parent_id=parent_id)
    return receiving.receive_original(db=db, store=store, user_id=req["user_id"], incoming=incoming,
                                      chunks=_chunks(path), retention_days=settings.retention_days)


def _record(*, db: Database, store: ObjectStore, settings: Settings, sealer: Sealer, req: dict[str, Any],
            work: Path, files: list[tuple[str, str, int, str]], clock: dict[str, Any], end_tsa: str,
            environment: dict[str, Any], session: PageSession) -> str:
    with db.read() as s:
        case = s.get(Case, req["case_id"])
        officer = s.get(User, req["user_id"])
        case_number, case_title, officer_name = case.case_number, case.title or "", officer.name
    facts = RecordFacts(
        case_number=case_number, case_title=case_title, officer=officer_name, target=req["url"], mode=req["mode"],
        device_id=req["device_id"], note=req["note"], start_tsa=clock["tsa_time"], end_tsa=end_tsa,
        local_start=session.started.isoformat(), local_end=(session.ended or utcnow()).isoformat(), clock=clock,
        environment=environment, files=files, zone=settings.time_zone,
        refused=tuple((r["url"], _reason_said("zh", r["reason"])) for r in environment["refused"]),
        failed=tuple((r["url"], _reason_said("zh", r["reason"])) for r in environment["failed"]),
        outcome=f"未完成：{problem_said('zh', session.error)}" if session.error else "完成，数据已固定")
    draft, sealed = work / "record-draft.pdf", work / "远程勘验笔录.pdf"
    write_record(facts, draft)
    with draft.open("rb") as source, sealed.open("w+b") as output:
        sealer.seal_pdf(source, output)
    item = _receive(db, store, settings, req, sealed, EvidenceKind.document, {"inspection": req["id"]})
    return item.id


def problem_said(code: str, text: str) -> str:
    """Why a capture did not finish (its session's ``error``, stored in English) in language
    ``code``: the archive's own words translated, the browser's, ffmpeg's and the network's
    quoted as they are; a text worded otherwise is given as it is."""
    return said(code, text, CAPTURE_PROBLEMS, reason=_reason_said,
                moment=lambda lang, moment: enum_label(lang, "capture_moment", moment)) or text


def _reason_said(code: str, text: str) -> str:
    """A policy refusal's or a request failure's reason in language ``code``."""
    if text == NOTHING:
        return translate(code, "capture_refusal.nothing")
    return (said(code, text, POLICY_REFUSALS, reason=_reason_said,
                 what=lambda lang, what: enum_label(lang, "capture_network", what))
            or said(code, text, FETCH_PROBLEMS) or text)
