"""Resumable (tus 1.0) uploads on both stacks: real clients, interruptions, restarts."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from archive import work
from archive.errors import ObjectNotFound
from archive.models import LedgerEntry, Upload, utcnow
from ingest import tus
from tests.conftest import ROOT
from tests.faults import Link
from tests.servers import free_port, wait_port
from tests.tools import CLIENT_TLS

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


def _meta(**fields: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items())


def _create(client: httpx.Client, case_id: str, data: bytes, *, sha256: str | None = None, **extra: str) -> str:
    fields = {"case_id": case_id, "kind": "other", "filename": "clip.bin", **extra}
    fields["sha256"] = sha256 if sha256 is not None else hashlib.sha256(data).hexdigest()
    r = client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": _meta(**fields)})
    assert r.status_code == 201, r.text
    assert r.headers["Tus-Resumable"] == "1.0.0"
    assert "Upload-Expires" in r.headers or not data  # an empty upload is complete at once
    return r.headers["Location"]


def _listed(client: httpx.Client, case_id: str) -> list[dict]:
    r = client.get(f"/api/v1/cases/{case_id}/evidence")
    assert r.status_code == 200, r.text
    return r.json()


def _offset(client: httpx.Client, url: str) -> int:
    r = client.head(url, headers=TUS)
    assert r.status_code == 200, r.status_code
    assert r.headers["Cache-Control"] == "no-store"
    return int(r.headers["Upload-Offset"])


def _patch(client: httpx.Client, url: str, offset: int, body: bytes, **headers: str) -> httpx.Response:
    return client.patch(url, headers={**PATCH, "Upload-Offset": str(offset), **headers}, content=body)


def _finish(stack, client: httpx.Client, url: str, data: bytes) -> str:
    """Resume until done the way a client does (HEAD, PATCH, retry while the server is busy)."""
    for _ in range(200):
        offset = _offset(client, url)
        r = _patch(client, url, offset, data[offset:])
        if r.status_code in (409, 423):  # the previous, cut-off request is still finishing
            time.sleep(0.1)
            continue
        assert r.status_code == 204, r.text
        assert int(r.headers["Upload-Offset"]) == len(data)
        return r.headers["Evidence-Item-Id"]
    raise AssertionError("upload never finished")


def _check_item(stack, client: httpx.Client, item_id: str, data: bytes) -> None:
    item = client.get(f"/api/v1/evidence/{item_id}").json()
    assert item["sha256"] == hashlib.sha256(data).hexdigest()
    assert item["size"] == len(data)
    assert hashlib.sha256(client.get(f"/api/v1/evidence/{item_id}/content").content).hexdigest() == item["sha256"]


def test_discovery_and_protocol_version(stack, officer):
    with stack.client(officer) as c:
        r = c.options("/api/v1/uploads")
        assert r.status_code == 204
        assert r.headers["Tus-Version"] == "1.0.0"
        assert {"creation", "termination", "checksum", "expiration"} <= set(r.headers["Tus-Extension"].split(","))
        assert "sha256" in r.headers["Tus-Checksum-Algorithm"].split(",")
        r = c.post("/api/v1/uploads", headers={"Upload-Length": "3"})
        assert r.status_code == 412 and r.json()["error"]["code"] == "tus_version_unsupported"
        assert r.headers["Tus-Version"] == "1.0.0"
    with stack.client(None) as anon:
        r = anon.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "3"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"


@pytest.mark.slow  # a 7 MiB upload processed and sealed by the worker
def test_tuspy_end_to_end(stack, officer, case, tmp_path):
    from tusclient import client as tus_client

    data = os.urandom(7 * MiB + 333)  # more than one 5 MiB S3 part
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    client = tus_client.TusClient(f"{stack.url}/api/v1/uploads", headers={"Authorization": f"Bearer {officer}"})
    stream = open(path, "rb")  # tuspy leaves files it opens itself unclosed
    uploader = client.uploader(
        file_stream=stream, chunk_size=2 * MiB, upload_checksum=True,
        metadata={"case_id": case["id"], "kind": "bodycam_video", "filename": "clip.mp4",
                  "sha256": hashlib.sha256(data).hexdigest(), "device_id": "cam-7",
                  "recorded_start": "2024-05-01T10:00:00+08:00"},
    )
    with stream:
        uploader.upload()
    with stack.client(officer) as c:
        upload = c.get(uploader.url).json()
        assert upload["status"] == "complete" and upload["offset"] == len(data)
        _check_item(stack, c, upload["item_id"], data)
        item = c.get(f"/api/v1/evidence/{upload['item_id']}").json()
        assert item["kind"] == "bodycam_video" and item["device_id"] == "cam-7"
        # A retried last PATCH (the client never saw the answer) creates nothing new.
        r = _patch(c, uploader.url, len(data), b"")
        assert r.status_code == 204 and r.headers["Evidence-Item-Id"] == upload["item_id"]
        assert [i["id"] for i in _listed(c, case["id"])] == [upload["item_id"]]
    with stack.services.db.snapshot() as s:
        received = s.execute(
            select(func.count()).select_from(LedgerEntry)
            .where(LedgerEntry.item_id == upload["item_id"], LedgerEntry.action == "evidence_received")
        ).scalar_one()
    assert received == 1
    stack.wait_item(officer, upload["item_id"], lambda i: i.get("sm3"))


def _cut_body(data: bytes, stop: int):
    """A body generator that dies after ``stop`` bytes (the link drops)."""
    for i in range(0, stop, 256 * 1024):
        yield data[i : min(i + 256 * 1024, stop)]
    raise ConnectionAbortedError("link dropped")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_interrupted_at_random_offsets_and_resumed(stack, officer, case, seed):
    rng = random.Random(seed)
    data = rng.randbytes(11 * MiB + rng.randrange(MiB))
    with stack.client(officer) as c:
        url = _create(c, case["id"], data)
        for _ in range(3):
            offset = _offset(c, url)
            stop = rng.randrange(1, len(data) - offset)
            with pytest.raises((httpx.HTTPError, ConnectionAbortedError)):
                c.patch(url, headers={**PATCH, "Upload-Offset": str(offset)}, content=_cut_body(data[offset:], stop))
            assert _listed(c, case["id"]) == []  # nothing partial is ever evidence
        item_id = _finish(stack, c, url, data)
        _check_item(stack, c, item_id, data)
        assert [i["id"] for i in _listed(c, case["id"])] == [item_id]


def test_wrong_offset_is_409_and_bad_checksum_460(stack, officer, case):
    data = os.urandom(3 * MiB)
    with stack.client(officer) as c:
        url = _create(c, case["id"], data)
        r = _patch(c, url, 5, data)
        assert r.status_code == 409 and r.json()["error"]["code"] == "offset_mismatch"
        assert r.headers["Tus-Resumable"] == "1.0.0"
        good = base64.b64encode(hashlib.sha256(data[:MiB]).digest()).decode()
        bad = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
        r = _patch(c, url, 0, data[:MiB], **{"Upload-Checksum": f"sha256 {bad}"})
        assert r.status_code == 460 and r.json()["error"]["code"] == "checksum_mismatch"
        assert _offset(c, url) == 0  # the chunk was discarded
        r = _patch(c, url, 0, data[:MiB], **{"Upload-Checksum": "crc32 AAAA"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "checksum_algorithm_unsupported"
        r = _patch(c, url, 0, data[:MiB], **{"Upload-Checksum": f"sha256 {good}"})
        assert r.status_code == 204 and int(r.headers["Upload-Offset"]) == MiB
        r = c.patch(url, headers={**TUS, "Upload-Offset": str(MiB), "Content-Type": "application/octet-stream"}, content=b"x")
        assert r.status_code == 415
        r = _patch(c, url, MiB, data[MiB:] + b"extra")
        assert r.status_code == 413 and r.json()["error"]["code"] == "exceeds_upload_length"
        item_id = _finish(stack, c, url, data)
        _check_item(stack, c, item_id, data)
        # Complete: a retried last PATCH (no bytes) is answered again; bytes past the end are refused.
        r = _patch(c, url, len(data), b"")
        assert r.status_code == 204 and int(r.headers["Upload-Offset"]) == len(data)
        r = _patch(c, url, len(data), b"more")
        assert r.status_code == 413 and r.json()["error"]["code"] == "exceeds_upload_length"


def test_uploads_are_private_to_their_creator(stack, officer, case):
    other = stack.user(role="officer", unit="unit-a")
    data = os.urandom(1000)
    with stack.client(officer) as c:
        url = _create(c, case["id"], data)
    with stack.client(other) as o:
        assert o.head(url, headers=TUS).status_code == 404
        r = _patch(o, url, 0, data)
        assert r.status_code == 404 and r.json()["error"]["code"] == "upload_not_found"
        assert o.delete(url, headers=TUS).status_code == 404
        assert o.get(url).status_code == 404
    stranger = stack.user(role="officer", unit="unit-b")
    with stack.client(stranger) as s:
        r = s.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "3", "Upload-Metadata": _meta(case_id=case["id"], kind="other", filename="x")})
        assert r.status_code == 404 and r.json()["error"]["code"] == "case_not_found"
    reviewer = stack.user(role="reviewer", unit="unit-a")
    with stack.client(reviewer) as rv:
        r = rv.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "3", "Upload-Metadata": _meta(case_id=case["id"], kind="other", filename="x")})
        assert r.status_code == 403


def test_termination_of_open_and_completed_uploads(stack, officer, case):
    data = os.urandom(6 * MiB)
    with stack.client(officer) as c:
        url = _create(c, case["id"], data)
        assert _patch(c, url, 0, data[: 5 * MiB + 1]).status_code == 204
        handle = _upload_row(stack, url).state["handle"]
        r = c.delete(url, headers=TUS)
        assert r.status_code == 204
        assert c.head(url, headers=TUS).status_code == 404
        assert _patch(c, url, 5 * MiB + 1, data[5 * MiB + 1 :]).status_code == 404
        _assert_stage_gone(stack, handle)
        done = _create(c, case["id"], data)
        item_id = _finish(stack, c, done, data)
        r = c.delete(done, headers=TUS)
        assert r.status_code == 409 and r.json()["error"]["code"] == "upload_is_evidence"
        _check_item(stack, c, item_id, data)
        assert _offset(c, done) == len(data)


def _upload_row(stack, url: str) -> Upload:
    with stack.services.db.session() as s:
        return s.get(Upload, url.rsplit("/", 1)[-1])


def _assert_stage_gone(stack, handle: dict) -> None:
    store = stack.services.store
    if handle["backend"] == "local":
        assert not (store.staging_dir / handle["file"]).exists()
    else:
        assert not (store.spool_dir / handle["spool"]).exists()
        uploads = store.client._list_multipart_uploads(store.bucket, prefix=handle["key"]).uploads
        assert not [u for u in uploads if u.upload_id == handle["upload_id"]]


def test_abandoned_upload_expires(stack, officer, case):
    data = os.urandom(2 * MiB)
    with stack.client(officer) as c:
        url = _create(c, case["id"], data)
        assert _patch(c, url, 0, data[:MiB]).status_code == 204
        row = _upload_row(stack, url)
        # Not yet: expiry is counted from the last activity.
        assert row.id not in tus.expire_uploads(db=stack.services.db, store=stack.services.store)
        later = utcnow() + timedelta(hours=stack.settings.upload_expiry_hours, minutes=1)
        assert row.id in tus.expire_uploads(db=stack.services.db, store=stack.services.store, now=later)
        assert tus.expire_uploads(db=stack.services.db, store=stack.services.store, now=later) == []
        r = c.head(url, headers=TUS)
        assert r.status_code == 410
        r = _patch(c, url, MiB, data[MiB:])
        assert r.status_code == 410 and r.json()["error"]["code"] == "upload_expired"
        assert _listed(c, case["id"]) == []
        _assert_stage_gone(stack, row.state["handle"])
    assert _upload_row(stack, url).status == "expired"


@pytest.mark.slow  # waits for the worker's periodic expiry
def test_expiry_task_runs_in_the_worker(stack, officer, case):
    data = os.urandom(1000)
    with stack.client(officer) as c:
        url = _create(c, case["id"], data)
        assert _patch(c, url, 0, data[:10]).status_code == 204
    with stack.services.db.session() as s:
        s.get(Upload, url.rsplit("/", 1)[-1]).expires_at = utcnow() - timedelta(seconds=1)  # as if long idle
    stack.services.enqueue(work.EXPIRE_UPLOADS)
    deadline = time.monotonic() + 60
    while _upload_row(stack, url).status != "expired":
        assert time.monotonic() < deadline, "the worker never expired the upload"
        time.sleep(0.2)
    _assert_stage_gone(stack, _upload_row(stack, url).state["handle"])


def test_declared_hash_mismatch_keeps_nothing(stack, officer, case):
    data = os.urandom(6 * MiB)
    with stack.client(officer) as c:
        url = _create(c, case["id"], data, sha256=hashlib.sha256(b"something else").hexdigest())
        r = _patch(c, url, 0, data)
        assert r.status_code == 409 and r.json()["error"]["code"] == "hash_mismatch"
        assert c.head(url, headers=TUS).status_code == 410
        assert _listed(c, case["id"]) == []
        row = _upload_row(stack, url)
        assert row.status == "failed" and "sha256" in row.error
        with pytest.raises(ObjectNotFound):
            stack.services.store.stat(row.state["handle"]["key"])


def test_content_the_case_holds_completes_as_the_existing_item(stack, officer, case):
    data = os.urandom(MiB + 3)
    with stack.client(officer) as c:
        first = _finish(stack, c, _create(c, case["id"], data), data)
        url = _create(c, case["id"], data, filename="again.bin")
        assert _finish(stack, c, url, data) == first
        assert [i["id"] for i in _listed(c, case["id"])] == [first]
        row = _upload_row(stack, url)
        assert row.status == "complete" and row.item_id == first
        # The second copy was discarded before it was locked: one object holds the content.
        with pytest.raises(ObjectNotFound):
            stack.services.store.stat(row.state["handle"]["key"])


def test_zero_length_upload_and_creation_with_upload(stack, officer, case):
    with stack.client(officer) as c:
        url = _create(c, case["id"], b"")
        item_id = c.get(url).json()["item_id"]
        assert c.get(f"/api/v1/evidence/{item_id}").json()["size"] == 0
        data = os.urandom(200_000)
        fields = {"case_id": case["id"], "kind": "document", "filename": "a.pdf", "sha256": hashlib.sha256(data).hexdigest()}
        r = c.post("/api/v1/uploads", content=data, headers={
            **PATCH, "Upload-Length": str(len(data)), "Upload-Metadata": _meta(**fields)})
        assert r.status_code == 201 and r.headers["Upload-Offset"] == str(len(data))
        _check_item(stack, c, r.headers["Evidence-Item-Id"], data)


# --- restart of the API process mid-upload --------------------------------------------


class OwnApi:
    """The API as a separate uvicorn process on the stack's configuration (so it can be killed)."""

    def __init__(self, stack, log: Path):
        self.stack, self.port, self.log = stack, free_port(), log
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        out = open(self.log, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning"],
            env=self.stack.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )
        out.close()
        assert wait_port(self.port, 30), self.log.read_text()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@pytest.mark.slow  # an API process killed mid-upload and started again
def test_api_killed_mid_upload_and_restarted(stack, officer, case, tmp_path):
    data = random.Random(7).randbytes(13 * MiB + 12345)
    api = OwnApi(stack, tmp_path / "api.log")
    api.start()
    try:
        headers = {"Authorization": f"Bearer {officer}"}
        with httpx.Client(verify=CLIENT_TLS, base_url=api.url, headers=headers, timeout=60) as c:
            url = _create(c, case["id"], data)
            assert _patch(c, url, 0, data[: 6 * MiB]).status_code == 204  # recorded, hash running in process 1

            def slow_body():
                for i in range(6 * MiB, len(data), 512 * 1024):
                    yield data[i : i + 512 * 1024]
                    time.sleep(0.05)

            def kill_soon():
                time.sleep(0.4)
                api.kill()

            import threading

            killer = threading.Thread(target=kill_soon)
            killer.start()
            with pytest.raises(httpx.HTTPError):
                c.patch(url, headers={**PATCH, "Upload-Offset": str(6 * MiB)}, content=slow_body())
            killer.join()
        with stack.client(officer) as sc:
            assert _listed(sc, case["id"]) == []
        api.start()  # a new process: no running hash, the stage and the offset are all it has
        with httpx.Client(verify=CLIENT_TLS, base_url=api.url, headers=headers, timeout=60) as c:
            assert _offset(c, url) == 6 * MiB
            item_id = _finish(stack, c, url, data)
            _check_item(stack, c, item_id, data)
            assert [i["id"] for i in _listed(c, case["id"])] == [item_id]
    finally:
        if api.process and api.process.poll() is None:
            api.process.terminate()
            api.process.wait(10)


# --- the command line ---------------------------------------------------------------------


@pytest.mark.slow  # the upload CLI as a process, killed and resumed
def test_cli_upload_interrupted_and_resumed(stack, officer, case, tmp_path):
    """The network goes quiet in the middle of ``evidence upload``, the officer presses
    Ctrl-C, and the same command run again resumes where the server stopped."""
    data = os.urandom(9 * MiB + 5)
    path = tmp_path / "interview.mp4"
    path.write_bytes(data)
    env = dict(stack.env, EVIDENCE_TOKEN=officer, XDG_CACHE_HOME=str(tmp_path / "cache"))
    state = tmp_path / "cache" / "evidence" / "uploads.json"
    command = [sys.executable, "-m", "api.cli", "upload", case["id"], str(path), "--kind", "interview_video",
               "--chunk-size", "2"]
    # tuspy opens a connection per request: creation, two 2 MiB PATCHes, then the third is held.
    with Link(stack.api.port, carry=3) as link:
        first = subprocess.Popen([*command, "--url", link.url], env=env, cwd=ROOT, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert link.held.wait(120), "the upload never reached its third chunk"
            first.send_signal(signal.SIGINT)
            _, err = first.communicate(timeout=60)
        finally:
            first.kill()
        assert first.returncode == 3, err
        assert "interrupted at 4194304 bytes; run the same command again to resume" in err
        link.restore()
        saved = json.loads(state.read_text())
        assert len(saved) == 1
        url = next(iter(saved.values()))["url"]
        with stack.client(officer) as c:
            assert c.get(url).json()["offset"] == 4 * MiB
            assert _listed(c, case["id"]) == []
        second = subprocess.run([*command, "--url", stack.url], env=env, cwd=ROOT, text=True, capture_output=True,
                                timeout=300)
        assert second.returncode == 0, second.stderr
        assert "resuming at 4194304" in second.stderr
        item_id = second.stdout.strip().splitlines()[-1]
        with stack.client(officer) as c:
            _check_item(stack, c, item_id, data)
            assert c.get(url).json()["item_id"] == item_id
    assert json.loads(state.read_text()) == {}


@pytest.mark.parametrize("chunk_size", [MiB, 3 * MiB, 5 * MiB + 3])
def test_cli_hashing_pass_gives_the_file_and_chunk_digests(tmp_path, chunk_size):
    """``evidence upload`` reads the file once for its SHA-256 and every chunk's, then
    sends the chunk digests as Upload-Checksum without hashing again; a chunk the pass
    did not see (another offset or length) is hashed when sent."""
    import io

    from rich.console import Console
    from tusclient.client import TusClient

    from api import tus_client

    data = os.urandom(11 * MiB + 7)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    whole, known = tus_client._hash_file(path, len(data), chunk_size, Console(file=io.StringIO()))
    assert whole == hashlib.sha256(data).hexdigest()
    assert known == {
        start: (len(data[start : start + chunk_size]), hashlib.sha256(data[start : start + chunk_size]).digest())
        for start in range(0, len(data), chunk_size)
    }
    uploader = tus_client._Sha256Uploader(
        file_stream=io.BytesIO(data), client=TusClient("http://127.0.0.1:9/none"), chunk_size=chunk_size,
        upload_checksum=True, known={0: (4, b"\x01" * 32)},
    )
    assert uploader.checksum_algorithm(b"abcd").digest() == b"\x01" * 32  # taken, not computed
    assert uploader.checksum_algorithm(b"abc").digest() == hashlib.sha256(b"abc").digest()
    uploader.offset = 5
    assert uploader.checksum_algorithm(b"abcd").digest() == hashlib.sha256(b"abcd").digest()


def test_a_received_originals_type_comes_from_its_bytes_not_its_name(stack, officer, case):
    """The record says what an original is from the moment it is answered, by its first bytes,
    on a direct upload and on tus alike: an MPEG-TS file named .ts is video/mp2t (the name
    alone reads as a Qt translation file), an HTML page named .jpg is text/html, a JPEG
    named .txt is image/jpeg."""
    ts = b"".join(bytes([0x47, 0x40, 0x00, 0x10]) + os.urandom(184) for _ in range(8))
    samples = {"paused.ts": (ts, "video/mp2t"),
               "photo.jpg": (b"<!DOCTYPE html><html><body>not a photo</body></html>", "text/html"),
               "notes.txt": (b"\xff\xd8\xff\xe0" + os.urandom(2000), "image/jpeg")}
    with stack.client(officer) as c:
        for name, (data, expected) in samples.items():
            r = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": name}, content=data)
            assert r.status_code == 201 and r.json()["media_type"] == expected, (name, r.text)
            url = _create(c, case["id"], data + b"\n", filename=f"tus-{name}")
            item_id = _finish(stack, c, url, data + b"\n")
            assert c.get(f"/api/v1/evidence/{item_id}").json()["media_type"] == expected, name


def test_patches_of_one_upload_in_two_processes_keep_one_writer(stack, officer, case):
    """Two server processes (each with its own per-process state) receiving a PATCH of one
    upload at the same offset: the second is 423 ``upload_locked`` while the first writes, and
    the item is the first body's bytes under the first body's hash. Both used to write the
    stage: in 11 runs of 30 on PostgreSQL + S3 the item named one body's SHA-256 over the
    other body's bytes (its content then failed fixity, and it could never be sealed)."""
    import threading

    from archive.errors import ArchiveError
    from ingest.tus.hashing import LiveUploads

    first_body, second_body = random.Random(1).randbytes(3 * MiB), random.Random(2).randbytes(3 * MiB)
    with stack.client(officer) as c:
        url = _create(c, case["id"], first_body)
    upload_id = url.rsplit("/", 1)[1]
    with stack.services.db.read() as s:
        user_id = s.get(Upload, upload_id).user_id
    writing = threading.Event()

    def slowly(data: bytes):  # type: ignore[no-untyped-def]
        for i in range(0, len(data), 256 * 1024):
            yield data[i:i + 256 * 1024]
            writing.set()
            time.sleep(0.05)

    def patch(body, chunks):  # type: ignore[no-untyped-def]
        try:
            return tus.append(db=stack.services.db, store=stack.services.store, live=LiveUploads(), user_id=user_id,
                              upload_id=upload_id, offset=0, chunks=chunks, checksum=None,
                              content_length=len(body), retention_days=1, expiry_hours=1)
        except ArchiveError as exc:
            return exc

    answers: list[object] = []
    first = threading.Thread(target=lambda: answers.append(patch(first_body, slowly(first_body))))
    first.start()
    assert writing.wait(30)
    second = patch(second_body, iter([second_body]))
    first.join(60)
    assert isinstance(second, ArchiveError) and (second.status, second.code) == (423, "upload_locked"), second
    (done,) = answers
    assert isinstance(done, tus.AppendResult) and done.item_id, done
    with stack.client(officer) as c:
        _check_item(stack, c, done.item_id, first_body)
        # The hold went with the PATCH: the upload is complete, and a retry of the last PATCH is answered.
        assert _offset(c, url) == len(first_body)


def test_an_upload_holding_every_byte_is_finished_by_the_server(stack, officer, case, monkeypatch):
    """The last PATCH recorded every byte, then its completion failed (the store down for a
    moment): tus clients read HEAD's offset, equal to the length, and send nothing more. The
    HEAD finishes it (and the hourly upload task would), so the bytes become evidence."""
    import threading

    from archive.errors import StoreUnavailable
    from ingest.tus import lifecycle
    from ingest.tus.hashing import LiveUploads

    body = random.Random(3).randbytes(MiB + 17)
    with stack.client(officer) as c:
        url = _create(c, case["id"], body)
    upload_id = url.rsplit("/", 1)[1]
    with stack.services.db.read() as s:
        user_id = s.get(Upload, upload_id).user_id
    real = lifecycle.complete
    here = threading.get_ident()

    def store_down(**kwargs):  # type: ignore[no-untyped-def]
        if threading.get_ident() == here:
            raise StoreUnavailable("store unreachable (the test's)")
        return real(**kwargs)

    monkeypatch.setattr(lifecycle, "complete", store_down)
    with pytest.raises(StoreUnavailable):
        tus.append(db=stack.services.db, store=stack.services.store, live=LiveUploads(), user_id=user_id,
                   upload_id=upload_id, offset=0, chunks=iter([body]), checksum=None, content_length=len(body),
                   retention_days=1, expiry_hours=1)
    with stack.services.db.read() as s:
        row = s.get(Upload, upload_id)
        assert (row.status, row.offset, row.item_id) == ("open", len(body), None)
    with stack.client(officer) as c:
        assert _offset(c, url) == len(body)
        state = c.get(f"/api/v1/uploads/{upload_id}").json()
        assert state["status"] == "complete" and state["item_id"], state
        _check_item(stack, c, state["item_id"], body)
