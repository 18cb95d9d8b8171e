"""Media and document fixtures for the ingest tests, generated once per session."""

from __future__ import annotations

import random
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.tools import need

_SRC = "testsrc=size=160x90:rate=25"


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def ffmpeg() -> None:
    """ffmpeg and ffprobe, which make and read the media of these tests."""
    need("ffmpeg"), need("ffprobe")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip(media_dir: Path) -> Path:
    """4 s of 160x90 H.264 with B-frames (presentation order differs from storage) and AAC."""
    out = media_dir / "clip.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", f"{_SRC}:duration=4",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=4",
        "-c:v", "libx264", "-preset", "ultrafast", "-bf", "3",
        "-c:a", "aac", "-metadata", "creation_time=2024-05-01T08:30:00Z",
        "-metadata", "model=BodyCam X1", "-movflags", "use_metadata_tags", str(out),
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def jump_clip(media_dir: Path) -> Path:
    """6 s of media whose timestamps jump 5 s after second 3 (the recorder paused).

    setpts shifts every frame from 3 s on by 5 s, and passthrough keeps ffmpeg from
    filling the hole with duplicated frames, so the jump is in the packets.
    """
    out = media_dir / "jump.mp4"
    shift = "'if(gte(T,3),PTS+5/TB,PTS)'"
    _ffmpeg(
        "-f", "lavfi", "-i", f"{_SRC}:duration=6",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=6",
        "-vf", f"setpts={shift}", "-af", f"asetpts={shift}", "-fps_mode", "passthrough",
        "-c:v", "libx264", "-preset", "ultrafast", "-bf", "3", "-c:a", "aac", str(out),
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def audio_only(media_dir: Path) -> Path:
    out = media_dir / "voice.m4a"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=2", "-c:a", "aac", str(out))
    return out


@pytest.fixture(scope="session")
def truncated_mp4(media_dir: Path, clip: Path) -> Path:
    """The first 60 % of ``clip``: the moov atom (written last) is missing."""
    out = media_dir / "truncated.mp4"
    data = clip.read_bytes()
    out.write_bytes(data[: len(data) * 6 // 10])
    return out


@pytest.fixture(scope="session")
def zero_byte(media_dir: Path) -> Path:
    out = media_dir / "empty.mp4"
    out.write_bytes(b"")
    return out


@pytest.fixture(scope="session")
def random_mp4(media_dir: Path) -> Path:
    out = media_dir / "noise.mp4"
    out.write_bytes(random.Random(20240501).randbytes(64 * 1024))
    return out


def make_pdf(path: Path, pages: list[str]) -> Path:
    """Write a minimal, valid PDF with one line of Helvetica text per page."""
    objects: list[bytes] = []
    n = len(pages)
    # 1: catalog, 2: pages, 3: font, then (page, content) pairs.
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
        )
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    path.write_bytes(bytes(out))
    return path


def make_docx(path: Path, paragraphs: list[str], *, pages: int | None = 2) -> Path:
    """Write a minimal docx (the parts a reader needs) with the given paragraphs."""
    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        zf.writestr(
            "word/document.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{ns}">'
            f"<w:body>{body}</w:body></w:document>",
        )
        if pages is not None:
            zf.writestr(
                "docProps/app.xml",
                '<?xml version="1.0"?><Properties xmlns="http://schemas.openxmlformats.org/'
                f'officeDocument/2006/extended-properties"><Pages>{pages}</Pages></Properties>',
            )
    return path


@pytest.fixture(scope="session")
def pdf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pdf(
        tmp_path_factory.mktemp("docs") / "record.pdf",
        ["Seizure record page one", "Signed by the officer"],
    )


@pytest.fixture(scope="session")
def docx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_docx(
        tmp_path_factory.mktemp("docs") / "interview.docx",
        ["Interview record", "The party declined to sign."],
    )
