"""Setting up the capture's tools (the link to ffmpeg Playwright's video writer uses)."""

from __future__ import annotations

from pathlib import Path


def test_capture_tools_set_up_from_many_threads_at_once(tmp_path: Path) -> None:
    """The first inspections of a fresh data directory start together: each sets up the link
    to ffmpeg; none may fail for another's temporary file."""
    import os
    import threading

    from ingest.capture.browser import playwright_ffmpeg

    for round_ in range(40):
        tools = tmp_path / f"tools-{round_}"
        barrier, errors = threading.Barrier(16), []

        def set_up() -> None:
            barrier.wait()
            try:
                playwright_ffmpeg(tools)
            except Exception as exc:  # noqa: BLE001 - the test reports every failure
                errors.append(exc)

        threads = [threading.Thread(target=set_up) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        [link] = list(tools.glob("ffmpeg-*/*"))
        assert link.name == "ffmpeg-linux" and os.access(link, os.X_OK)


def test_a_missing_record_is_said_with_its_code_in_both_languages() -> None:
    """An inspection whose record could not be made names the bundle it kept; its error reads
    back to a code (the API's ``error_code``) and is said in Chinese and English."""
    import re

    from api.pages.i18n import sentence
    from api.routes.inspections import _error_code
    from archive import work
    from archive.i18n.messages import MESSAGES
    from archive.inspections.service import INSPECTION_PROBLEMS

    for code, template in INSPECTION_PROBLEMS.templates.items():
        entry = MESSAGES[f"inspection_problem.{code}"]
        assert entry["en"] == template
        assert set(re.findall(r"{(\w+)}", entry["zh"])) == INSPECTION_PROBLEMS.placeholders(code)
    item = "0b6f1a52-3c1e-4b8e-9d8f-1f2e3d4c5b6a"
    error = INSPECTION_PROBLEMS.say("record_missing", item=item,
                                    reason=work.STEP_REASONS.say("internal_error", error="LayoutError"))
    assert _error_code(error) == "inspection_problem.record_missing"
    assert _error_code(INSPECTION_PROBLEMS.say("interrupted")) == "inspection_problem.interrupted"
    assert _error_code("navigation failed: net::ERR_NAME_NOT_RESOLVED") == "capture_problem.navigation_failed"
    assert _error_code("worded otherwise") is None and _error_code(None) is None
    zh = sentence("zh", error)
    assert item in zh and "勘验笔录" in zh and "内部错误（LayoutError）" in zh, zh
    assert sentence("en", error) == error
