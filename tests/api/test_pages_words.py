"""What a reader of the pages sees of the sentences the archive stores: the clips a gap's cause
names, by their file names; faults, checks and failures in the page's language."""

from __future__ import annotations

import re
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from archive.continuity.analysis import CAUSES
from archive.i18n import gap_cause
from tests.capture.support import continuity
from tests.tools import CLIENT_TLS, sign_in

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _page(stack, token: str, path: str, lang: str) -> str:
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, timeout=60, cookies={"evidence_lang": lang}) as b:
        sign_in(b, token)
        r = b.get(path)
        assert r.status_code == 200, r.text
        return r.text


def _clip(directory: Path, name: str, seconds: int) -> Path:
    path = directory / name
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=size=160x90:rate=1:duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
                    "-metadata", f"comment={uuid.uuid4().hex}", str(path)], check=True)
    return path


def test_a_cause_names_its_clips_by_the_names_given_and_keeps_unknown_ids():
    stored = CAUSES["overlap"].format(item="id-2", previous="id-1", seconds="20.0")
    names = {"id-1": "FILE0001.MP4", "id-2": "FILE0002.MP4"}
    assert gap_cause("zh", stored, clips=names) == \
        "录像 FILE0002.MP4 与同一设备的录像 FILE0001.MP4 重叠 20.0 秒（设备时钟偏差有误，或同一录像上传了两次）"
    assert gap_cause("en", stored, clips=names).startswith("clip FILE0002.MP4 overlaps clip FILE0001.MP4 ")
    assert gap_cause("en", stored) == stored  # the stored English, ids and all, is unchanged
    assert gap_cause("zh", stored, clips={"id-1": "FILE0001.MP4"}).startswith("录像 id-2 与同一设备的录像 FILE0001.MP4")


@pytest.mark.slow
def test_gap_causes_on_the_pages_name_clips_by_file_name_linked_to_their_rows(stack, officer, case, tmp_path):
    cam = f"CAM-{uuid.uuid4().hex[:8]}"
    first, third = _clip(tmp_path, "FILE0001.MP4", 30), _clip(tmp_path, "FILE0003.MP4", 30)
    with stack.client(officer) as c:
        ids = []
        for path, start in ((first, T0), (third, T0 + timedelta(seconds=60))):
            r = c.post(f"/api/v1/cases/{case['id']}/evidence", content=path.read_bytes(),
                       params={"kind": "bodycam_video", "filename": path.name, "device_id": cam,
                               "recorded_start": start.isoformat()})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
    (gap,) = continuity(stack, officer, case)["gaps"]
    assert gap["cause"] == CAUSES["between_segments"].format(previous=ids[0], item=ids[1])  # the API: as stored
    for lang, words in (("zh", "录像 {} 与录像 {} 之间没有录像"), ("en", "no recording between clip {} and clip {}")):
        page = _page(stack, officer, f"/cases/{case['id']}", lang)
        row = re.search(rf'<tr id="gap-{gap["id"]}".*?</tr>', page, re.DOTALL).group(0)
        cause = re.search(r"<td>([^<]*<a [^>]*data-testid=\"gap-clip\".*?)</td>", row, re.DOTALL).group(1)
        links = re.findall(r'<a href="#item-([^"]+)" title="([^"]*)" data-testid="gap-clip">([^<]+)</a>', cause)
        assert [(i, n) for i, _about, n in links] == [(ids[0], "FILE0001.MP4"), (ids[1], "FILE0003.MP4")], cause
        assert all(cam in about and "10:0" in about for _i, about, _n in links), links  # device, local start
        assert re.sub(r"<[^>]+>", "", cause) == words.format("FILE0001.MP4", "FILE0003.MP4")
        assert not UUID.search(re.sub(r'href="[^"]*"', "", cause))
        assert f'id="item-{ids[0]}"' in page  # the link's target: the item's row
        # The timeline's gap says the same, in words (a tooltip holds no links).
        assert words.format("FILE0001.MP4", "FILE0003.MP4") in page
