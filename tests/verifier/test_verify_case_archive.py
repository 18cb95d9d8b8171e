"""The offline verifier checks a sealed case archive record and names what was changed.

The record is made in-process on the embedded default (a case taken from filing to closing
with its reviews); the verifier is given only the three files and the root.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from evidence_verify import check_case_archive, is_case_archive
from evidence_verify.cli import main

OK = {a: {"ok": True, "comment": ""} for a in ("subject", "facts", "basis", "discretion", "procedure")}


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, Path]:
    """(directory with record.json and its seals, root.pem) of a closed case."""
    from archive import db as archive_db
    from archive.cases import closing, reviews, stages
    from archive.cases.service import create_case
    from archive.db import Database
    from archive.identity.users import add_user
    from archive.seals.sealer import Sealer
    from archive.settings import load_settings
    from archive.storage import open_store

    base = tmp_path_factory.mktemp("case-archive")
    settings = load_settings(data_dir=base / "data")
    archive_db.upgrade(settings)
    db, store, sealer = Database(settings), open_store(settings), Sealer(settings)
    with db.session() as s:
        officer, _ = add_user(s, name="officer", unit="u", role="officer")
        reviewer, _ = add_user(s, name="reviewer", unit="u", role="reviewer")
        case_id = create_case(s, store=store, user=officer, case_number="CL-1", title="Sample 样本").id
        officer_id, reviewer_id = officer.id, reviewer.id

    def review(checkpoint: str) -> None:
        reviews.record_review(db=db, sealer=sealer, user_id=reviewer_id, case_id=case_id, body=reviews.ReviewInput(
            checkpoint=checkpoint, aspects=OK, decision="approve", opinion="fine"))

    def move(*to: str) -> None:
        for stage in to:
            with db.session() as s:
                from archive.models import User

                stages.move(s, user=s.get(User, officer_id), case_id=case_id, to=stage, reason="on")

    review("filing")
    move("investigation", "notice", "legal_review")
    review("approval")
    move("decision", "service")
    review("closing")
    row = closing.close_case(db=db, store=store, sealer=sealer, user_id=officer_id, case_id=case_id)
    folder = base / "record"
    folder.mkdir()
    (folder / "record.json").write_bytes(bytes(row.record))
    (folder / "record.json.p7s").write_bytes(bytes(row.cades))
    (folder / "record.json.sm2.json").write_bytes(json.dumps(row.sm2, sort_keys=True, separators=(",", ":")).encode())
    sealer.close()
    db.dispose()
    return folder, settings.resolved_keys_dir / "root.pem"


def _copy(folder: Path, to: Path, record: bytes | None = None) -> Path:
    to.mkdir()
    for f in folder.iterdir():
        (to / f.name).write_bytes(f.read_bytes())
    if record is not None:
        (to / "record.json").write_bytes(record)
    return to


def test_a_sealed_record_verifies_as_a_directory_and_as_a_zip(sample, tmp_path, capsys) -> None:
    folder, root = sample
    assert is_case_archive(folder)
    report = check_case_archive(folder, trust=[root])
    assert report.ok, report.failures
    assert report.case_number == "CL-1" and report.checkpoint_tree_size
    assert {f.check for f in report.findings} >= {"record", "cades", "sm2", "review", "ledger"}
    zpath = tmp_path / "record.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in folder.iterdir():
            z.write(f, f"CL-1/{f.name}")
    assert main([str(zpath), "--trust", str(root), "--lang", "en"]) == 0
    assert "CASE ARCHIVE RECORD VERIFIED" in capsys.readouterr().out


def test_broken_json_is_named_by_its_byte(sample, tmp_path, capsys) -> None:
    folder, root = sample
    raw = (folder / "record.json").read_bytes()
    at = raw.index(b'"case":{') + len(b'"case":')
    broken = _copy(folder, tmp_path / "r", raw[:at] + b"[" + raw[at + 1:])
    assert main([str(broken), "--trust", str(root), "--lang", "en"]) == 1
    err = capsys.readouterr().err
    assert "FAILED cades: record.json:" in err
    assert "FAILED record: record.json: not valid JSON at byte" in err, err


def test_a_changed_review_is_named(sample, tmp_path) -> None:
    folder, root = sample
    record = json.loads((folder / "record.json").read_bytes())
    inner = json.loads(record["reviews"][1]["record"])
    inner["opinion"] = "rejected"
    record["reviews"][1]["record"] = json.dumps(inner, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    record["reviews"][1]["opinion"] = "rejected"
    changed = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    report = check_case_archive(_copy(folder, tmp_path / "r", changed), trust=[root])
    failing = {(f.check, f.member) for f in report.failures}
    assert ("cades", "record.json") in failing
    assert any(check == "review" and "reviews[1]" in member for check, member in failing), failing


def test_a_missing_seal_and_a_foreign_root_fail(sample, tmp_path) -> None:
    folder, root = sample
    bare = _copy(folder, tmp_path / "r")
    (bare / "record.json.p7s").unlink()
    report = check_case_archive(bare, trust=[root])
    assert any(f.check == "cades" and f.member == "record.json.p7s" for f in report.failures)
    from signing import create_dev_pki

    other = create_dev_pki(tmp_path / "other-pki")  # another organisation's root
    report = check_case_archive(folder, trust=[other.root_cert])
    assert {"cades", "review"} <= {f.check for f in report.failures}


@pytest.mark.parametrize("top", ["record.json", "bagit.txt"], ids=["case-archive", "export"])
def test_a_zip_naming_a_member_in_bytes_not_utf8_is_unreadable_not_a_crash(sample, tmp_path, capsys, top) -> None:
    """Flag 0x800 says the names are UTF-8 and one is not: zipfile's UnicodeDecodeError is the
    ZIP's fault, said as such (exit 2), whether the ZIP looks like a case archive or an export."""
    _folder, root = sample
    path = tmp_path / "hostile.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"X/{top}", "{}")
        z.writestr("X/\u00e9\u00e9.txt", "x")
    path.write_bytes(path.read_bytes().replace("\u00e9\u00e9.txt".encode(), b"\xff\xfe\xfd\xfc.txt"))
    assert main([str(path), "--trust", str(root), "--lang", "en"]) == 2
    assert "a member name is not valid UTF-8 although the ZIP marks its names as UTF-8" in capsys.readouterr().err
