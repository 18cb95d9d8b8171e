"""One headless Chromium session through the recording proxy (Playwright, Debian's Chromium).

A fresh browser with a fresh profile, no extensions, a fixed viewport, service workers
blocked and every request through :class:`~ingest.capture.proxy.RecordingProxy`
(``<-loopback>``: loopback too). Playwright records the screen (its video writer runs
Debian's ffmpeg: see :func:`playwright_ffmpeg`); full-page screenshots are taken after the
page loaded and at the end; DOM snapshots at both moments go into the WARC.

The browser's screencast sends a frame only when the screen changes, and none while a
navigation swaps the page's renderer: its video has holes where nothing was drawn, which the
continuity scan would report as pauses of the workstation's recording. The recording kept as
evidence is therefore held at :data:`SCREEN_FPS` frames a second from the first frame to the
last (:func:`constant_rate`), as a screen recorder records: a still screen is still frames.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from archive.models import utcnow
from archive.wording import Sentences
from ingest.capture.proxy import PROXY_ANSWERS
from ingest.capture.warc import WarcLog

DISABLED_FEATURES = [
    # The address the officer gave is fetched as given: Chromium would otherwise try an http://
    # address over HTTPS first and capture another page than the one asked for.
    "HttpsUpgrades", "HttpsFirstBalancedModeAutoEnable",
    # Nothing of the browser's own is fetched beside the page (name look-ups go by the proxy).
    "DnsOverHttps", "NetworkTimeServiceQuerying", "OptimizationHints", "PreconnectToSearch", "AimEnabled",
    "MediaRouter", "LensOverlay",
    # What Playwright itself turns off to drive the browser reliably.
    "AvoidUnnecessaryBeforeUnloadCheckSync", "DestroyProfileOnBrowserClose", "PaintHolding",
    "ThirdPartyStoragePartitioning", "AvoidCorsURLLoaderRestartOnRedirect",
]
"""Chromium reads only the last ``--disable-features`` on its command line: ours comes after
Playwright's and replaces it, so it names again every feature Playwright's list turns off
(Playwright 1.65: the entries that apply to Linux) beside those the capture needs off."""
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", f"--disable-features={','.join(DISABLED_FEATURES)}",
        "--js-flags=--max-old-space-size=512"]
VIEWPORT = {"width": 1280, "height": 800}
SNAPSHOT_SECONDS = 30.0
"""How long a screenshot, or reading the DOM or the title, may take. A hostile page (a script
that never yields, a navigation to an address that never finishes answering) would otherwise
hold the session, and the worker, until the task's hard time limit killed it."""
SCREEN_FPS = 25
SCREEN_NOTE = (f"browser screencast held at {SCREEN_FPS} frames/s (a frame repeats while the screen does not "
               "change), from the first frame drawn to the end of the session")


CAPTURE_PROBLEMS = Sentences("capture_problem", {
    "refused": "refused: {reason}",
    "failed": "failed: {reason}",
    "navigation_failed": "navigation failed: {detail}",
    "stream_failed": "stream recording failed: {detail}",
    "screenshot_failed": "screenshot at {moment} failed: {detail}",
}, fields={"moment": r"start|end"})
"""Why a capture did not finish (a :class:`PageSession`'s ``error``, kept in English by the
inspection and its API); said in Chinese in the inspection record. A refusal's or failure's
``reason`` is a :data:`~archive.inspections.policy.POLICY_REFUSALS` or
:data:`~ingest.capture.fetch.FETCH_PROBLEMS` sentence; ``detail`` is the browser's or ffmpeg's."""


@dataclass
class PageSession:
    """What the browser session produced (files are in the work directory)."""

    started: datetime
    ended: datetime | None = None
    browser_version: str = ""
    final_url: str | None = None
    title: str | None = None
    redirects: list[dict[str, Any]] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)
    video: Path | None = None
    error: str | None = None
    downloads: list[dict[str, str]] = field(default_factory=list)
    """Files the page offered as downloads ({url, filename}): their bytes are in the WARC, as the
    proxy fetched them; the browser saves nothing."""


def playwright_ffmpeg(directory: Path) -> Path:
    """A browsers directory where Playwright finds Debian's ffmpeg for its video writer.

    Playwright looks for ``ffmpeg-<revision>/ffmpeg-linux`` under PLAYWRIGHT_BROWSERS_PATH;
    a link to the system's ffmpeg stands there, so nothing is ever downloaded.
    """
    import playwright

    browsers = json.loads((Path(playwright.__file__).parent / "driver/package/browsers.json").read_text())
    revision = next(b["revision"] for b in browsers["browsers"] if b["name"] == "ffmpeg")
    target = directory / f"ffmpeg-{revision}" / "ffmpeg-linux"
    target.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg and not target.exists():
        # Two inspections may start at once on a fresh data directory: each writer makes its
        # own link and renames it over the target (atomic; the last one stands, both equal).
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        try:
            tmp.symlink_to(ffmpeg)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
    return directory


def run_page(*, url: str, seconds: int, cookies: list[dict[str, Any]], workdir: Path, proxy_port: int,
             browser_path: str, tools_dir: Path, warc: WarcLog, nav_timeout: float = 30.0) -> PageSession:
    """Open ``url`` for ``seconds`` and record the session; never raises for the page's faults
    (an unreachable or refused target ends with ``error`` set and what was recorded kept)."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    os.environ["PLAYWRIGHT_BROWSERS_PATH"] = str(playwright_ffmpeg(tools_dir))
    session = PageSession(started=utcnow())
    video_dir = workdir / "video"
    args = [*ARGS, f"--proxy-server=http://127.0.0.1:{proxy_port}", "--proxy-bypass-list=<-loopback>"]
    with sync_playwright() as pw:
        # launch() gives the browser a fresh, empty profile directory of its own, removed at close.
        browser = pw.chromium.launch(executable_path=browser_path, args=args, headless=True)
        session.browser_version = f"Chromium {browser.version}"
        context = browser.new_context(
            viewport=VIEWPORT,
            # The proxy presents its own certificates; the real server's are verified by the fetcher.
            ignore_https_errors=True, service_workers="block", accept_downloads=False,
            record_video_dir=str(video_dir), record_video_size=VIEWPORT, locale="zh-CN",
        )
        try:
            if cookies:
                context.add_cookies([{**c, "url": url} if "domain" not in c else c for c in cookies])
            page = context.new_page()
            page.on("download", lambda d: session.downloads.append({"url": d.url, "filename": d.suggested_filename}))
            navigation_error = None
            try:
                response = page.goto(url, wait_until="load", timeout=nav_timeout * 1000)
                request = response.request if response else None
                hops = []
                while request is not None:
                    resp = request.response()
                    hops.append({"url": request.url, "status": resp.status if resp else None,
                                 "location": resp.headers.get("location") if resp else None})
                    request = request.redirected_from
                session.redirects = list(reversed(hops))
                if response is not None and response.headers.get("x-evidence-capture"):
                    answer = page.inner_text("body")
                    said = PROXY_ANSWERS.read(answer)  # the proxy's page: its reason, not its words
                    session.error = CAPTURE_PROBLEMS.say(
                        "refused" if response.headers["x-evidence-capture"] == "refused" else "failed",
                        reason=said[1]["reason"] if said else answer)
            except PlaywrightError as exc:
                navigation_error = CAPTURE_PROBLEMS.say("navigation_failed", detail=exc.message.splitlines()[0])
            # The page is watched for the seconds asked from the moment it has loaded (or failed to),
            # however long the browser took to start: a busy host shortens nothing the officer sees.
            deadline = utcnow().timestamp() + seconds
            _snapshot(page, warc, "start", session, workdir)
            remaining = deadline - utcnow().timestamp()
            if remaining > 0:
                page.wait_for_timeout(remaining * 1000)
            _snapshot(page, warc, "end", session, workdir)
            # An address that is a file to download is no page, yet the proxy captured it whole. Its
            # download event reaches us after goto's error, so this is decided once the session ends.
            if navigation_error and not any(d["url"] == url for d in session.downloads):
                session.error = navigation_error
            session.final_url, session.title = page.url, _read(page, "() => document.title")
            video = page.video
        finally:
            context.close()
            browser.close()
        session.ended = utcnow()
        if video is not None:
            session.video = constant_rate(Path(video.path()))
    return session


def constant_rate(screencast: Path) -> Path:
    """The screen recording at :data:`SCREEN_FPS` frames a second (see the module's doc), or
    the screencast as it is when ffmpeg cannot read it (an empty or cut-off file stays evidence)."""
    import ffmpeg

    from ingest.errors import DeriveFailed
    from ingest.ffmpeg_adapter import input_options, input_url, run_graph, time_limit

    out = screencast.with_name("screen-recording.webm")
    graph = (ffmpeg.input(input_url(screencast), **input_options()).video.filter("fps", fps=SCREEN_FPS)
             .output(str(out), vcodec="libvpx", deadline="realtime", **{"cpu-used": 8, "b:v": "1M"}))
    try:
        run_graph(graph, what="constant-rate screen recording", limit=time_limit(screencast, decoding=True),
                  failure=DeriveFailed)
    except DeriveFailed:
        out.unlink(missing_ok=True)
        return screencast
    screencast.unlink()
    return out


_DOCUMENT = """() => (document.doctype ? new XMLSerializer().serializeToString(document.doctype) : "")
    + (document.documentElement ? document.documentElement.outerHTML : "")"""
"""The document as page.content() gives it (doctype and markup as rendered now)."""


def _read(page, script: str) -> str | None:  # type: ignore[no-untyped-def]
    """``script`` evaluated in the page within :data:`SNAPSHOT_SECONDS`, or None: page.content()
    and page.title() wait without end for a page whose script never yields or whose navigation
    never commits; a locator's evaluation is bounded."""
    try:
        return page.locator(":root").evaluate(script, timeout=SNAPSHOT_SECONDS * 1000)
    except Exception:  # noqa: BLE001 - a crashed or stuck page has no DOM to give; the capture goes on
        return None


def _snapshot(page, warc: WarcLog, moment: str, session: PageSession, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    """A full-page screenshot file and the DOM (as rendered now) as a WARC resource."""
    now = utcnow()
    path = workdir / f"screenshot-{moment}.png"
    try:
        page.screenshot(path=str(path), full_page=True, timeout=SNAPSHOT_SECONDS * 1000)
        session.screenshots.append(path)
    except Exception as exc:  # noqa: BLE001 - recorded, the capture goes on
        session.error = session.error or CAPTURE_PROBLEMS.say("screenshot_failed", moment=moment, detail=exc)
    dom = _read(page, _DOCUMENT)
    if dom is not None:
        warc.resource(f"urn:dom:{moment}:{page.url}", "text/html; charset=utf-8", dom.encode("utf-8"), now)
    if path.exists():
        warc.resource(f"urn:screenshot:{moment}:{page.url}", "image/png", path.read_bytes(), now)
