"""The offline verifier catches every change to a certified export and names the member.

The export is built in-process on the embedded default (SQLite, local store, development
PKI) — the verifier itself needs none of that: it is given only the files and the root.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from evidence_verify import SealCache, check_export

ROOT = Path(__file__).resolve().parents[2]
SEED = 20240605


def build_sample_export(base: Path) -> tuple[Path, Path]:
    """A real export of a small case (3 sealed items); returns (zip path, root.pem)."""
    from archive import db as archive_db
    from archive.db import Database
    from archive.exports import build
    from archive.models import EvidenceKind
    from archive.seals.sealer import Sealer
    from archive.settings import load_settings
    from archive.storage import open_store
    from tests.casefile import open_case_file

    settings = load_settings(data_dir=base / "data")
    archive_db.upgrade(settings)
    db, store = Database(settings), open_store(settings)
    sealer = Sealer(settings)
    casefile = open_case_file(db, store, sealer, case_number="WH-2024 (17)", title="Sample 样本")
    rng = random.Random(SEED)
    for name, kind, size in (("clip 1.mp4", EvidenceKind.bodycam_video, 200_000),
                             ("记录 ..pdf", EvidenceKind.other, 5_000), ("a%b.txt", EvidenceKind.other, 300)):
        casefile.add_sealed(name, [rng.randbytes(size)], kind=kind)
    export_id = casefile.approved_export()
    result = build.build_export(db=db, store=store, settings=settings, export_id=export_id, sealer=sealer)
    assert result is not None, "the export was held back instead of built"
    zpath = base / "export.zip"
    with open(zpath, "wb") as f:
        for chunk in store.read(result.storage_key):
            f.write(chunk)
    db.dispose()
    return zpath, settings.resolved_keys_dir / "root.pem"


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("export")
    zpath, root = build_sample_export(base)
    unpacked = base / "unpacked"
    with zipfile.ZipFile(zpath) as z:
        z.extractall(unpacked)
    (bag,) = unpacked.iterdir()
    return zpath, bag, root


def failing_members(report) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.member for f in report.failures}


def rezip(bag: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as z:
        for p in sorted(bag.rglob("*")):
            if p.is_file():
                z.write(p, f"{bag.name}/{p.relative_to(bag).as_posix()}")
    return target


def test_pristine_export_verifies_as_zip_directory_and_dot(sample, monkeypatch) -> None:
    zpath, bag, root = sample
    for source in (zpath, bag, bag.parent, "."):
        if source == ".":
            monkeypatch.chdir(bag)  # run inside the unpacked bag, as a court would
        report = check_export(source, trust=[root])
        assert report.ok, report.failures
        assert report.bag == bag.name
        assert report.payload_bytes == 205_300
        assert {f.check for f in report.findings} >= {"bag", "manifest", "tagmanifest", "cades", "sm2", "item",
                                                      "ledger", "pdf", "export-manifest"}


@pytest.mark.slow  # the CLI as a process, several times
def test_cli_verify_export_exit_codes(sample, tmp_path) -> None:
    zpath, bag, root = sample
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env["PYTHONPATH"] = os.pathsep.join((str(ROOT), str(ROOT / "verifier")))  # this checkout's verifier too
    # Run from an empty directory with no settings: the verifier needs none.
    ok = subprocess.run([sys.executable, "-m", "api.cli", "verify-export", str(zpath), "--trust", str(root),
                         "--lang", "en"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "EXPORT VERIFIED" in ok.stdout
    assert not (tmp_path / "evidence-data").exists()
    broken = tmp_path / "broken"
    shutil.copytree(bag, broken / bag.name)
    victim = next((broken / bag.name / "data" / "originals").rglob("*.mp4"))
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    for lang in ("zh", "en"):
        bad = subprocess.run([sys.executable, "-m", "api.cli", "verify-export", str(broken), "--trust", str(root),
                              "--lang", lang], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert bad.returncode == 1
        assert victim.relative_to(broken / bag.name).as_posix() in bad.stderr
        assert ("未通过 " if lang == "zh" else "FAILED ") in bad.stderr, bad.stderr
    # Inside the unpacked bag, '.' is the export.
    dot = subprocess.run([sys.executable, "-m", "api.cli", "verify-export", ".", "--trust", str(root), "--lang", "en"],
                         cwd=bag, env=env, capture_output=True, text=True, timeout=120)
    assert dot.returncode == 0, dot.stdout + dot.stderr
    assert "EXPORT VERIFIED" in dot.stdout


@pytest.mark.slow  # the verifier as a process outside the server's packages
def test_stand_alone_evidence_verify(sample, tmp_path) -> None:
    """The court's command: the zip, the directory and '.', and a tampered export's members named."""
    zpath, bag, root = sample
    # This checkout's verifier, and nothing of the server on the path (the installed
    # console script may be another checkout's; the fresh-venv test runs that one).
    command = [sys.executable, "-m", "evidence_verify.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env["PYTHONPATH"] = str(ROOT / "verifier")
    for source, cwd in ((zpath, tmp_path), (bag, tmp_path), (Path("."), bag)):
        ok = subprocess.run([*command, str(source), "--trust", str(root), "--lang", "en"], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "EXPORT VERIFIED" in ok.stdout
        assert f"({bag.name})" in ok.stdout

    broken = tmp_path / "broken" / bag.name
    shutil.copytree(bag, broken)
    tampered = ["data/originals/" + next((broken / "data" / "originals").rglob("*.txt")).relative_to(
        broken / "data" / "originals").as_posix(), "ledger/entries.jsonl", "certificate.pdf"]
    for member in tampered:
        path = broken / member
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    (broken / "items" / "planted.txt").write_bytes(b"planted")
    bad = subprocess.run([*command, ".", "--trust", str(root), "--lang", "en"], cwd=broken, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    named = {line.split(": ")[1] for line in bad.stderr.splitlines() if line.startswith("FAILED ")}
    assert {*tampered, "items/planted.txt"} <= named, bad.stderr

    unreadable = subprocess.run([*command, str(root), "--trust", str(root), "--lang", "en"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
    assert unreadable.returncode == 2
    assert "neither a ZIP file nor a directory" in unreadable.stderr


def test_untrusted_root_fails(sample, tmp_path) -> None:
    from signing import create_dev_pki

    zpath, _bag, _root = sample
    other = create_dev_pki(tmp_path / "other-pki")
    report = check_export(zpath, trust=[other.root_cert])
    assert not report.ok
    assert {"cades", "pdf"} <= {f.check for f in report.failures}


@pytest.mark.slow  # a hundred verifications of a whole export
def test_100_random_single_byte_mutations_are_all_detected(sample, tmp_path) -> None:
    _zpath, pristine, root = sample
    bag = tmp_path / pristine.name
    shutil.copytree(pristine, bag)
    members = sorted(p.relative_to(bag).as_posix() for p in bag.rglob("*") if p.is_file())
    rng = random.Random(SEED)
    cache = SealCache()
    missed = []
    for n in range(100):
        member = rng.choice(members)
        path = bag / member
        original = path.read_bytes()
        pos = rng.randrange(len(original))
        mutated = bytearray(original)
        mutated[pos] = (mutated[pos] + rng.randrange(1, 256)) % 256
        os.chmod(path, 0o644)
        path.write_bytes(bytes(mutated))
        try:
            # Every tenth mutation is re-zipped, to exercise the ZIP reader as well.
            source = rezip(bag, tmp_path / f"m{n}.zip") if n % 10 == 0 else bag
            report = check_export(source, trust=[root], cache=cache)
        finally:
            path.write_bytes(original)
        if report.ok or member not in failing_members(report):
            missed.append((member, pos, report.failures))
    assert not missed, missed
    assert check_export(bag, trust=[root], cache=cache).ok


def test_deleted_added_and_renamed_members_are_named(sample, tmp_path) -> None:
    _zpath, pristine, root = sample
    rng = random.Random(SEED + 1)
    members = sorted(p.relative_to(pristine).as_posix() for p in pristine.rglob("*") if p.is_file())
    cache = SealCache()
    for n, member in enumerate(rng.sample(members, 12)):
        bag = tmp_path / f"del{n}" / pristine.name
        shutil.copytree(pristine, bag)
        (bag / member).unlink()
        report = check_export(bag, trust=[root], cache=cache)
        assert member in failing_members(report), (member, report.failures)

    for added in ("data/originals/extra.bin", "notes.txt", "items/x/manifest.json"):
        bag = tmp_path / f"add-{added.replace('/', '_')}" / pristine.name
        shutil.copytree(pristine, bag)
        (bag / added).parent.mkdir(parents=True, exist_ok=True)
        (bag / added).write_bytes(b"planted")
        for source in (bag, rezip(bag, bag.parent / "x.zip")):
            report = check_export(source, trust=[root], cache=cache)
            assert added in failing_members(report), (added, report.failures)

    for n, member in enumerate(rng.sample(members, 8)):
        bag = tmp_path / f"ren{n}" / pristine.name
        shutil.copytree(pristine, bag)
        renamed = member + ".renamed"
        (bag / member).rename(bag / renamed)
        report = check_export(bag, trust=[root], cache=cache)
        assert {member, renamed} <= failing_members(report), (member, report.failures)


def test_zip_with_escaping_member_is_refused(sample, tmp_path) -> None:
    zpath, _bag, root = sample
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(zpath) as src, zipfile.ZipFile(evil, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr(f"{src.infolist()[0].filename.split('/')[0]}/../../escape.txt", b"x")
    report = check_export(evil, trust=[root])
    assert not report.ok
    assert any("escape.txt" in f.member for f in report.failures)


def test_a_renamed_bag_directory_is_a_warning_not_a_failure(sample, tmp_path, capsys) -> None:
    """Court clerks rename folders: the bag's directory name is not content. The renamed bag
    (unpacked, or zipped under the new name) verifies, exit 0, with a warning naming both names."""
    from evidence_verify.cli import main

    _zpath, pristine, root = sample
    renamed = tmp_path / "y"
    shutil.copytree(pristine, renamed)
    for source in (renamed, rezip(renamed, tmp_path / "y.zip")):
        report = check_export(source, trust=[root])
        assert report.ok, report.failures
        assert report.bag == "y"
        (warning,) = report.warnings
        assert warning.check == "export-manifest" and pristine.name in warning.detail and "'y'" in warning.detail
        assert main([str(source), "--trust", str(root), "--lang", "en"]) == 0
        out, err = capsys.readouterr()
        assert "EXPORT VERIFIED" in out, out + err
        assert f"WARNING export-manifest: export-manifest.json: names bag directory '{pristine.name}'" in err, err
    assert check_export(pristine, trust=[root]).warnings == ()


@pytest.fixture
def clean_locale(monkeypatch) -> None:
    """No locale and no TZ: the report's own defaults (Chinese, Asia/Shanghai)."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG", "TZ"):
        monkeypatch.delenv(name, raising=False)


def _flipped_original(pristine: Path, to: Path) -> tuple[Path, str]:
    """A copy of the bag with one byte of one original flipped; (bag, the original's path in it)."""
    bag = shutil.copytree(pristine, to / pristine.name)
    victim = next((bag / "data" / "originals").rglob("*.txt"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    return bag, victim.relative_to(bag).as_posix()


def test_the_report_is_chinese_by_default_and_names_a_flipped_original(sample, tmp_path, capsys,
                                                                       clean_locale) -> None:
    from evidence_verify.cli import main

    _zpath, pristine, root = sample
    bag, member = _flipped_original(pristine, tmp_path)
    assert main([str(bag), "--trust", str(root)]) == 1
    out, err = capsys.readouterr()
    assert "未通过的检查" in out and "导出包验证通过" not in out, out
    failed = err.splitlines()
    assert all(line.startswith("未通过 ") for line in failed), err
    assert f"未通过 载荷清单（manifest）: {member}: sha256 与 manifest-sha256.txt 不符" in failed, err
    assert f"未通过 导出清单（export-manifest）: {member}: SHA-256 或大小与已签章的 export-manifest.json 不符" in failed, err
    assert any(line.startswith(f"未通过 证据原件（item）: {member}: ") and "记载 sha256 为" in line for line in failed), err
    assert "FAILED" not in out + err and "differs" not in err


def test_the_same_report_in_english_with_lang_en(sample, tmp_path, capsys, clean_locale) -> None:
    from evidence_verify.cli import main

    _zpath, pristine, root = sample
    bag, member = _flipped_original(pristine, tmp_path)
    assert main([str(bag), "--trust", str(root), "--lang", "en"]) == 1
    out, err = capsys.readouterr()
    assert "Failures" in out and "未通过" not in out + err, out + err
    assert f"FAILED manifest: {member}: sha256 differs from manifest-sha256.txt" in err.splitlines(), err
    assert f"FAILED export-manifest: {member}: SHA-256 or size differs from the sealed export-manifest.json" in err
    assert main([str(pristine), "--trust", str(root), "--lang", "en"]) == 0
    assert "EXPORT VERIFIED" in capsys.readouterr().out


@pytest.mark.parametrize(("environ", "lang"), [
    ({"LANG": "en_US.UTF-8"}, "en"), ({"LANG": "zh_CN.UTF-8"}, "zh"), ({"LANG": "C.UTF-8"}, "zh"),
    ({"LANG": "de_DE.UTF-8"}, "zh"), ({}, "zh"), ({"LANG": "zh_CN.UTF-8", "LC_ALL": "en_GB.UTF-8"}, "en"),
])
def test_the_locale_chooses_the_language_unless_lang_is_given(sample, capsys, clean_locale, monkeypatch,
                                                              environ, lang) -> None:
    from evidence_verify.cli import main

    _zpath, pristine, root = sample
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert main([str(pristine), "--trust", str(root)]) == 0
    out = capsys.readouterr().out
    assert ("导出包验证通过" if lang == "zh" else "EXPORT VERIFIED") in out, out
    other = "en" if lang == "zh" else "zh"
    assert main([str(pristine), "--trust", str(root), "--lang", other]) == 0
    assert ("导出包验证通过" if other == "zh" else "EXPORT VERIFIED") in capsys.readouterr().out


def _sealed_at(out: str, label: str) -> datetime:
    import re

    match = re.search(label + r" (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ([+-]\d\d):(\d\d)", out)
    assert match, out
    sign = -1 if match.group(2).startswith("-") else 1
    offset = timedelta(hours=int(match.group(2)), minutes=sign * int(match.group(3)))
    return datetime.fromisoformat(match.group(1)).replace(tzinfo=timezone(offset))


def test_times_are_shown_in_china_standard_time_or_the_zone_asked_for(sample, capsys, clean_locale,
                                                                       monkeypatch) -> None:
    """The seal's time-stamp, in the header and in every finding, is local time with its offset:
    +08:00 by default, another zone with --tz or TZ; never the UTC the seal states."""
    from evidence_verify.cli import main

    _zpath, pristine, root = sample
    stamped = datetime.fromisoformat(check_export(pristine, trust=[root]).sealed_at)
    assert main([str(pristine), "--trust", str(root), "--all"]) == 0
    out = capsys.readouterr().out
    assert "+08:00" in out and "+00:00" not in out and "UTC" not in out, out
    assert _sealed_at(out, "签章时间") == stamped and " +08:00" in out.split("签章时间 ")[1].split("\n")[0]
    assert "时间戳 " in out  # each seal's own time-stamp, in words and local time

    assert main([str(pristine), "--trust", str(root), "--all", "--lang", "en", "--tz", "Asia/Kolkata"]) == 0
    out = capsys.readouterr().out
    assert _sealed_at(out, "sealed") == stamped and "+05:30" in out and "+08:00" not in out, out

    monkeypatch.setenv("TZ", "America/Sao_Paulo")  # no daylight saving time since 2019: always -03:00
    assert main([str(pristine), "--trust", str(root), "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert _sealed_at(out, "sealed") == stamped and "-03:00" in out, out
    assert main([str(pristine), "--trust", str(root), "--lang", "en", "--tz", "UTC"]) == 0
    assert "+00:00" in capsys.readouterr().out

    with pytest.raises(SystemExit) as exit_:
        main([str(pristine), "--trust", str(root), "--tz", "Mars/Olympus_Mons"])
    assert exit_.value.code == 2
    assert "未知的时区 'Mars/Olympus_Mons'" in capsys.readouterr().err  # a usage error, in the report's language
    with pytest.raises(SystemExit) as exit_:
        main([str(pristine), "--trust", str(root), "--tz", "Mars/Olympus_Mons", "--lang", "en"])
    assert exit_.value.code == 2
    assert "unknown time zone 'Mars/Olympus_Mons'" in capsys.readouterr().err
