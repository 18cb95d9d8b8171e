"""The report's words: every sentence the verifier writes has its Chinese, and the defaults
of language and time zone are what the README says. (The report itself, on a real export,
is tested in test_verify_export.py.)"""

from __future__ import annotations

import ast
from datetime import datetime, timezone
from pathlib import Path

import pytest

from evidence_verify import i18n
from evidence_verify.localtime import default_zone, local_time, localise_times

PACKAGE = Path(__file__).resolve().parents[2] / "verifier" / "evidence_verify"

WRITERS = {"fail": -1, "add": -1, "warn": -1, "Finding": -1, "append": 0, "VerificationError": 0,
           "ExportUnreadable": 0, "ProofError": 0, "ValueError": 0}
"""Calls whose argument is a sentence a reader may see, and which argument (a finding's detail
is its last; an error's reason, or a problem appended to a list, its first)."""


def _sample(node: ast.expr) -> str | None:
    """The sentence ``node`` writes, each computed value as ``X``; None when it is no literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
    return None


def _assigned(node: ast.Assign, names: tuple[str, ...]) -> list[ast.expr]:
    """The values ``node`` gives the variables ``names`` (both branches of ``a if c else b``)."""
    target, value = node.targets[0], node.value
    pairs = list(zip(target.elts, value.elts)) if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) \
        else [(target, value)]
    values = [v for t, v in pairs if isinstance(t, ast.Name) and t.id in names]
    return [b for v in values for b in ((v.body, v.orelse) if isinstance(v, ast.IfExp) else (v,))]


def _sentences() -> set[tuple[str, str]]:
    found = set()
    for module in sorted(PACKAGE.glob("*.py")):
        if module.name == "cli.py":  # usage errors, in their own catalogue (the test below)
            continue
        for node in ast.walk(ast.parse(module.read_text(), str(module))):
            args: list[ast.expr] = []
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in WRITERS and node.args:
                    args.append(node.args[WRITERS[name]])
                if name == "_check_signature":  # the words each failure of a seal is said in
                    args.extend(k.value for k in node.keywords if k.arg in ("altered", "invalid"))
            elif isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple) and len(node.value.elts) == 2:
                args.append(node.value.elts[1])  # (ok, why) of the SM2 seal check
            elif isinstance(node, ast.Assign):  # where SM2 keys come from, said inside a finding
                args.extend(_assigned(node, ("source", "NAME_NOT_UTF8")))
            found.update((module.name, s) for s in map(_sample, args) if s)
    return found


def test_every_sentence_the_verifier_writes_reads_in_chinese() -> None:
    sentences = _sentences()
    assert len(sentences) > 80, sentences  # the scan still finds what the checks write
    untranslated = sorted((module, s) for module, s in sentences
                          if s != "X" and i18n.detail("zh", s) == s and s not in SAME_IN_CHINESE)
    assert not untranslated, untranslated


SAME_IN_CHINESE = {"Payload-Oxum X"}
"""Sentences whose Chinese is written as the English (a field name and its value)."""


USAGE_WRITERS = {"cli.py": {"error": 0, "ValueError": 0}, "localtime.py": {"UnknownZone": 0}}
"""Where the command line's own usage errors are written (``parser.error``, and the errors
it says through it), and which argument is the sentence."""


def test_every_usage_error_the_command_line_writes_reads_in_chinese() -> None:
    sentences = set()
    for module, writers in USAGE_WRITERS.items():
        for node in ast.walk(ast.parse((PACKAGE / module).read_text(), module)):
            if isinstance(node, ast.Call) and node.args:
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in writers:
                    sentences.add((module, _sample(node.args[writers[name]])))
    sentences.discard(("cli.py", None))  # parser.error(str(exc)): one of the others
    assert len(sentences) >= 3, sentences
    untranslated = sorted((module, s) for module, s in sentences if s is None or i18n.usage("zh", s) == s)
    assert not untranslated, untranslated


def test_every_word_is_in_both_languages() -> None:
    assert all(set(texts) == set(i18n.LANGS) for texts in i18n.WORDS.values()), i18n.WORDS


def test_a_sentence_no_pattern_knows_is_shown_as_it_is() -> None:
    assert i18n.detail("zh", "pyhanko said something new") == "pyhanko said something new"
    assert i18n.detail("en", "listed in m but missing from the bag") == "listed in m but missing from the bag"


def test_reasons_inside_sentences_are_translated_too() -> None:
    text = ("seal over export-manifest.json does not verify: data does not match the seal's message digest "
            "(the data, or the seal's digest, was altered)")
    assert i18n.detail("zh", text) == "对 export-manifest.json 的签章验证未通过：数据与签章的消息摘要不符（数据或签章中的摘要已被改动）"
    joined = "items/a/manifest.json states sha256 aa, data/x hashes to bb; states size 3, data/x is 4 bytes"
    assert i18n.detail("zh", joined) == "items/a/manifest.json 记载 sha256 为 aa，data/x 实为 bb；记载大小为 3，data/x 实为 4 字节"


@pytest.mark.parametrize(("environ", "lang"), [
    ({}, "zh"), ({"LANG": "C.UTF-8"}, "zh"), ({"LANG": "POSIX"}, "zh"), ({"LANG": "fr_FR.UTF-8"}, "zh"),
    ({"LANG": "en_US.UTF-8"}, "en"), ({"LANG": "zh_TW.UTF-8"}, "zh"), ({"LANG": "en_US", "LC_ALL": "zh_CN"}, "zh"),
    ({"LANG": "zh_CN", "LC_MESSAGES": "en_GB"}, "en"), ({"LC_ALL": "", "LANG": "en_US"}, "en"),
])
def test_the_language_follows_the_locale_else_chinese(environ, lang) -> None:
    assert i18n.default_lang(environ) == lang


def test_the_zone_is_china_standard_time_unless_tz_names_another() -> None:
    moment = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
    assert local_time(moment, default_zone({})) == "2026-03-01 18:00:00 +08:00"
    assert local_time(moment, default_zone({"TZ": "Europe/Berlin"})) == "2026-03-01 11:00:00 +01:00"
    assert local_time(moment, default_zone({"TZ": ":Asia/Tokyo"})) == "2026-03-01 19:00:00 +09:00"
    assert localise_times("time-stamped 2026-03-01T10:00:00+00:00 by CN=TSA", default_zone({})) == \
        "time-stamped 2026-03-01 18:00:00 +08:00 by CN=TSA"
