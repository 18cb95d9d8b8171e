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

