"""The command line speaks the report's language: ``evidence-verify --help`` and its usage
errors, argparse's own words included, are Chinese unless ``--lang en`` (anywhere on the
line) or an English locale says otherwise; usage errors still exit 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evidence_verify import cli, i18n

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def evidence_verify(*args: str, cwd: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    """This checkout's verifier as a process, nothing of the server on its path, with no
    locale but ``environ``."""
    env = {k: v for k, v in os.environ.items() if k not in LOCALE and not k.startswith("EVIDENCE_")}
    env.update(PYTHONPATH=str(ROOT / "verifier"), COLUMNS="80", **environ)
    return subprocess.run([sys.executable, "-m", "evidence_verify.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=60)


def test_help_is_chinese_by_default(tmp_path) -> None:
    shown = evidence_verify("--help", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert out.startswith("用法：evidence-verify "), out
    for chinese in ("位置参数", "选项", "显示此帮助信息并退出", "离线验证经认证的导出包",
                    "您信任的根证书的 PEM 文件（可重复给出）", "报告和命令行的语言"):
        assert chinese in out, out
    for english in ("usage:", "positional arguments", "options:", "show this help", "PEM file of"):
        assert english not in out, out


@pytest.mark.parametrize(("args", "environ"), [
    (("--lang", "en", "--help"), {}),
    (("--help", "--lang", "en"), {}),  # after --help, which argparse acts on first
    (("--help", "--lang=en"), {}),
    (("--help", "--la", "en"), {}),  # argparse's abbreviation
    (("--help",), {"LANG": "en_US.UTF-8"}),
    (("--help",), {"LANG": "zh_CN.UTF-8", "LC_ALL": "en_GB.UTF-8"}),
    (("--help", "--bogus", "--lang", "en"), {}),  # the rest of the line wrong
])
def test_help_is_english_with_lang_en_or_an_english_locale(tmp_path, args, environ) -> None:
    shown = evidence_verify(*args, cwd=tmp_path, **environ)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert out.startswith("usage: evidence-verify "), out
    for english in ("positional arguments", "options:", "show this help message and exit",
                    "PEM file of the root certificate(s) you trust"):
        assert english in out, out
    assert not CHINESE.search(out), out


def test_lang_zh_outweighs_an_english_locale(tmp_path) -> None:
    shown = evidence_verify("--help", "--lang", "zh", cwd=tmp_path, LANG="en_US.UTF-8")
    assert shown.returncode == 0 and shown.stdout.startswith("用法："), shown.stdout


@pytest.mark.parametrize(("args", "chinese", "english"), [
    (("x.zip",), "缺少必需的参数：--trust", "the following arguments are required: --trust"),
    ((), "缺少必需的参数：export, --trust", "the following arguments are required: export, --trust"),
    (("x.zip", "--trust"), "参数 --trust：需要一个值", "argument --trust: expected one argument"),
    (("x.zip", "--trust", "r.pem", "--lang", "fr"), "参数 --lang：无效的选择：'fr'（可选：",
     "argument --lang: invalid choice: 'fr' (choose from "),
    (("x.zip", "--trust", "r.pem", "--bogus"), "无法识别的参数：--bogus", "unrecognized arguments: --bogus"),
    (("x.zip", "--trust", "r.pem", "--t", "UTC"), "有歧义的选项：--t 可匹配 --trust, --tsa-trust, --tz",
     "ambiguous option: --t could match --trust, --tsa-trust, --tz"),
    (("x.zip", "--trust", "r.pem", "--all=yes"), "参数 --all：此选项不接受值，却给出了 'yes'",
     "argument --all: ignored explicit argument 'yes'"),
    (("missing.zip", "--trust", "r.pem"), "missing.zip 不存在", "missing.zip does not exist"),
    ((".", "--trust", "r.pem", "--tz", "Mars/Olympus_Mons"),
     "未知的时区 'Mars/Olympus_Mons'（应为 IANA 时区名，如 Asia/Shanghai）",
     "unknown time zone 'Mars/Olympus_Mons' (expected an IANA name such as Asia/Shanghai)"),
])
def test_usage_errors_are_chinese_by_default_english_with_lang_en_and_exit_2(tmp_path, args, chinese,
                                                                              english) -> None:
    zh = evidence_verify(*args, cwd=tmp_path)
    assert zh.returncode == 2, zh.stdout + zh.stderr
    assert zh.stderr.startswith("用法：evidence-verify "), zh.stderr
    assert f"evidence-verify：错误：{chinese}" in zh.stderr, zh.stderr
    assert "error" not in zh.stderr and "usage" not in zh.stderr, zh.stderr
    # --lang en after the error, as a clerk adds it on seeing one
    for en in (evidence_verify(*args, "--lang", "en", cwd=tmp_path),
               evidence_verify(*args, cwd=tmp_path, LANG="en_US.UTF-8")):
        assert en.returncode == 2, en.stdout + en.stderr
        assert en.stderr.startswith("usage: evidence-verify "), en.stderr
        assert f"evidence-verify: error: {english}" in en.stderr, en.stderr
        assert not CHINESE.search(en.stderr), en.stderr


def test_an_argparse_message_no_pattern_knows_is_said_in_english(capsys) -> None:
    """A message of argparse's that the catalogue lacks (a newer Python's, say) is not lost."""
    parser = cli._parser("zh")
    parser.add_argument("--pair", nargs=2)  # argparse's "expected 2 arguments", which this command cannot give
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["x.zip", "--trust", "r.pem", "--pair", "a"])
    assert exit_.value.code == 2
    assert "evidence-verify：错误：参数 --pair：expected 2 arguments" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        parser.error("something argparse says one day")
    assert exit_.value.code == 2
    assert "evidence-verify：错误：something argparse says one day\n" in capsys.readouterr().err
    assert i18n.usage("zh", "something argparse says one day") == "something argparse says one day"
    assert i18n.usage("en", "expected one argument") == "expected one argument"


def test_lang_is_the_only_option_its_abbreviations_can_mean() -> None:
    """The line is read for ``--l``, ``--la``, ``--lan`` before argparse parses it; that holds
    only while no other option starts with ``--l``."""
    parser = cli._parser("en")
    assert [s for a in parser._actions for s in a.option_strings if s.startswith("--l")] == ["--lang"]


def test_chinese_help_is_wrapped_by_the_columns_it_takes() -> None:
    text = i18n.word("zh", "cli.description")
    lines = cli._wrap(text, 40)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert all(cli._columns(line) <= 40 for line in lines), lines
    assert not any(line[0] in "，。、；：）”" or line[-1] in "（“" for line in lines), lines
    assert cli._wrap("the export's ZIP file or its unpacked directory", 20) == \
        ["the export's ZIP", "file or its unpacked", "directory"]
