"""What the report and the command line say, in Chinese (``zh``, the default) or English (``en``).

The checks record their findings in English (:attr:`~.report.Finding.detail`), and the
server, the tests and anyone reading :class:`~.report.ExportReport` from Python keep
reading that English; the check codes (``cades``, ``ledger``) are stable identifiers in
every language. Only the printed report is translated, here: headings and words by key
(:data:`WORDS`), findings by their English pattern (:data:`DETAILS`). A finding no pattern
matches (a library's own message) is shown in English rather than not at all; a test keeps
every pattern the verifier writes in the catalogue.

Why patterns and not a message key on each finding: a finding's detail is often built from
reasons raised deep in the seal checks, which the server shares and reads as English
sentences; the patterns translate the whole sentence, reasons inside included, without
changing what any caller reads.

The command line (``evidence-verify --help``, and its usage errors, argparse's own included)
speaks the report's language too: its texts are words by key (``cli.*``), and its errors are
translated by pattern (:data:`USAGE`, :func:`usage`), argparse's English kept for a message
no pattern knows (a newer Python's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

__all__ = ["LANGS", "check_name", "default_lang", "detail", "usage", "word"]

LANGS = ("zh", "en")


def default_lang(environ: Mapping[str, str]) -> str:
    """``zh`` or ``en`` as the locale says (``LC_ALL``, then ``LC_MESSAGES``, then ``LANG``,
    the POSIX order); ``zh`` when it says neither (``C``, ``POSIX``, unset, another language)."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            return value[:2].lower() if value[:2].lower() in LANGS else "zh"
    return "zh"


WORDS: dict[str, dict[str, str]] = {
    "export.head": {
        "zh": "案件 [bold]{case}[/] 的导出包 [bold]{export}[/]（{bag}）：{files} 个文件，载荷 {payload} 字节，"
              "保管链检查点 {tree}，签章时间 {sealed}",
        "en": "Export [bold]{export}[/] of case [bold]{case}[/] ({bag}): {files} files, {payload} payload bytes, "
              "ledger checkpoint {tree}, sealed {sealed}",
    },
    "record.head": {
        "zh": "案件 [bold]{case}[/] 的案卷归档记录 [bold]{archive}[/]（{source}）：保管链检查点 {tree}，签章时间 {sealed}",
        "en": "Case archive record [bold]{archive}[/] of case [bold]{case}[/] ({source}): ledger checkpoint {tree}, "
              "sealed {sealed}",
    },
    "export.verified": {
        "zh": "导出包验证通过：每个文件、签章、时间戳和保管链证明均成立。",
        "en": "EXPORT VERIFIED: every file, seal, time-stamp and ledger proof holds.",
    },
    "record.verified": {
        "zh": "案卷归档记录验证通过：其签章、每份法制审核的签章和每条保管链证明均成立。",
        "en": "CASE ARCHIVE RECORD VERIFIED: its seals, every review's seals and every ledger proof hold.",
    },
    "table.checks": {"zh": "检查项目", "en": "Checks"},
    "table.every": {"zh": "全部检查", "en": "Every check"},
    "table.failures": {"zh": "未通过的检查", "en": "Failures"},
    "column.check": {"zh": "检查", "en": "check"},
    "column.passed": {"zh": "通过", "en": "passed"},
    "column.failed": {"zh": "未通过", "en": "failed"},
    "column.result": {"zh": "结果", "en": "result"},
    "column.member": {"zh": "文件", "en": "member"},
    "column.detail": {"zh": "说明", "en": "detail"},
    "outcome.ok": {"zh": "通过", "en": "ok"},
    "outcome.fail": {"zh": "未通过", "en": "FAIL"},
    "line.failed": {"zh": "未通过", "en": "FAILED"},
    "line.warning": {"zh": "警告", "en": "WARNING"},
    "whole.bag": {"zh": "（整个包）", "en": "(bag)"},
    "unknown": {"zh": "？", "en": "?"},
    "cannot.verify": {"zh": "evidence-verify：无法验证 {path}：{why}", "en": "evidence-verify: cannot verify {path}: {why}"},
    "check.bag": {"zh": "BagIt 包结构", "en": "bag"},
    "check.manifest": {"zh": "载荷清单", "en": "manifest"},
    "check.tagmanifest": {"zh": "标签清单", "en": "tagmanifest"},
    "check.export-manifest": {"zh": "导出清单", "en": "export-manifest"},
    "check.cades": {"zh": "CAdES 签章", "en": "cades"},
    "check.sm2": {"zh": "SM2 签章", "en": "sm2"},
    "check.item": {"zh": "证据原件", "en": "item"},
    "check.ledger": {"zh": "保管链", "en": "ledger"},
    "check.pdf": {"zh": "证明书 PDF 签章", "en": "pdf"},
    "check.record": {"zh": "案卷归档记录", "en": "record"},
    "check.review": {"zh": "法制审核", "en": "review"},
    # the command line: argparse's own words (see cli._Parser), then the command's
    "cli.usage": {"zh": "用法：", "en": "usage: "},
    "cli.positionals": {"zh": "位置参数", "en": "positional arguments"},
    "cli.options": {"zh": "选项", "en": "options"},
    "cli.help": {"zh": "显示此帮助信息并退出", "en": "show this help message and exit"},
    "cli.error": {"zh": "{prog}：错误：{message}", "en": "{prog}: error: {message}"},
    "cli.description": {
        "zh": "离线验证经认证的导出包（其 ZIP 文件、解压后的目录，或在包内时的“.”），或案卷归档记录（含 "
              "record.json 及其签章的目录或 ZIP）；有检查未通过时退出码为 1，并逐一列出未通过的文件。无需服务器、"
              "账号或任何设置：只需导出包和您信任的根证书。",
        "en": "Verify a certified export (its ZIP, the unpacked directory, or '.' inside it), or a case archive "
              "record (a directory or ZIP with record.json and its seals), offline; exit 1 naming each failing "
              "member. Needs no server, no account and no settings: only the export and the roots you trust.",
    },
    "cli.export": {"zh": "导出包的 ZIP 文件或其解压后的目录", "en": "the export's ZIP file or its unpacked directory"},
    "cli.trust": {"zh": "您信任的根证书的 PEM 文件（可重复给出）",
                  "en": "PEM file of the root certificate(s) you trust (repeatable)"},
    "cli.tsa-trust": {"zh": "时间戳机构的根证书，如与 --trust 不同",
                      "en": "roots for the time-stamping authority, if not the same as --trust"},
    "cli.sm2-key": {"zh": "指定所用的 SM2 公钥，而不采用已签章的导出清单所担保的公钥",
                    "en": "pin the SM2 public key(s) instead of those the sealed export manifest vouches for"},
    "cli.all": {"zh": "列出每项检查，而不只是未通过的", "en": "list every check, not only the failures"},
    "cli.lang": {"zh": "报告和命令行的语言：zh（中文）或 en（英文）；默认依 LC_ALL、LC_MESSAGES、LANG 所示，"
                       "不是 zh 或 en 时为 zh",
                 "en": "language of the report and of this command line: zh (Chinese) or en (English); default "
                       "from LC_ALL/LC_MESSAGES/LANG when it says zh or en, else zh"},
    "cli.tz": {"zh": "报告中时间所用的 IANA 时区（如 Asia/Shanghai、UTC）；默认为 TZ 所指的时区（若已设置），"
                     "否则为 Asia/Shanghai",
               "en": "IANA time zone the report's times are shown in (e.g. Asia/Shanghai, UTC); default the zone "
                     "of TZ when set, else Asia/Shanghai"},
}
"""Headings, outcomes, check names and the command line's help: key -> language -> text
(``{name}`` placeholders)."""


def word(lang: str, key: str, /, **values: object) -> str:
    """The text of ``key`` in ``lang``, placeholders filled."""
    text = WORDS[key][lang]
    return text.format(**values) if values else text


def check_name(lang: str, code: str) -> str:
    """How a check is named: its code in English, ``CAdES 签章（cades）`` in Chinese (the code
    stays, so a clerk can match it to the manual and to what the server says)."""
    key = f"check.{code}"
    if lang == "en" or key not in WORDS:
        return code
    return f"{WORDS[key]['zh']}（{code}）"


DETAILS: dict[str, str] = {
    # the bag (RFC 8493) and the ZIP it came in
    "missing": "缺失",
    "tag file larger than {n} bytes": "标签文件大于 {n} 字节",
    "cannot be read ({why})": "无法读取（{why}）",
    "not the BagIt 1.0 declaration this format writes": "不是本格式写入的 BagIt 1.0 声明",
    "BagIt 1.0, UTF-8": "BagIt 1.0，UTF-8",
    "not 'Label: value' lines in UTF-8": "不是 UTF-8 编码的“Label: value”行",
    "Payload-Oxum {declared} but the payload is {actual}": "Payload-Oxum 为 {declared}，而载荷实为 {actual}",
    "Payload-Oxum {oxum}": "Payload-Oxum {oxum}",
    "not UTF-8": "不是 UTF-8 编码",
    "does not end with a newline": "未以换行符结尾",
    "line {n} is not '<{algorithm} hex>  <path>'": "第 {n} 行不是“<{algorithm} 十六进制>  <路径>”格式",
    "line {n}: {path} listed twice": "第 {n} 行：{path} 被列出两次",
    "listed in {manifest} but outside {folder}": "列于 {manifest}，但不在 {folder} 之下",
    "listed in {manifest} but not a tag file": "列于 {manifest}，但不是标签文件",
    "listed in {manifest} but missing from the bag": "列于 {manifest}，但包中缺失",
    "{algorithm} differs from {manifest}": "{algorithm} 与 {manifest} 不符",
    "present in the bag but not listed in {manifest}": "包中存在，但未列于 {manifest}",
    "does not match the bag (the files concerned are named)": "与包不符（相关文件已逐一列出）",
    "{n} files, every {algorithm} equal": "{n} 个文件，每个 {algorithm} 均一致",
    "the ZIP must hold one top directory, found {tops}": "ZIP 应只有一个顶层目录，实有 {tops}",
    "member outside the bag directory": "文件位于包目录之外",
    "member appears twice in the ZIP": "文件在 ZIP 中出现两次",
    "not a regular file (symlink or device)": "不是普通文件（符号链接或设备）",
    "unsafe or non-normalised member name": "文件名不安全或未规范化",
    "control character in member name": "文件名含控制字符",
    "a member name is not valid UTF-8 although the ZIP marks its names as UTF-8 (flag 0x800)":
        "ZIP 标明其文件名为 UTF-8（标志 0x800），但有文件名不是有效的 UTF-8",
    "{path} is neither a ZIP file nor a directory": "{path} 既不是 ZIP 文件也不是目录",
    "{path}: {why}": "{path}：{why}",
    "no trust roots given: nothing can be trusted": "未给出信任根证书：无从信任任何签章",
    # the sealed export manifest and the item manifests
    "not valid JSON ({why})": "不是有效的 JSON（{why}）",
    "not an {format} manifest": "不是 {format} 清单",
    "names bag directory {sealed}, the export has {actual} (renamed; the files are checked as they are)":
        "清单所记包目录名为 {sealed}，导出包实为 {actual}（已改名；文件按原样逐一检查）",
    "bad or repeated file entry {entry}": "文件条目有误或重复：{entry}",
    "SHA-256 or size differs from the sealed {manifest}": "SHA-256 或大小与已签章的 {manifest} 不符",
    "present in the bag but not in the sealed {manifest}": "包中存在，但不在已签章的 {manifest} 中",
    "{n} files, every SHA-256 and size equal": "{n} 个文件，每个 SHA-256 与大小均一致",
    "the original named by the export manifest is missing": "导出清单所列的原件缺失",
    "{manifest} states item {item}": "{manifest} 记载的证据为 {item}",
    "{manifest} states sha256 {sealed}, {path} hashes to {actual}": "{manifest} 记载 sha256 为 {sealed}，{path} 实为 {actual}",
    "{manifest} states size {sealed}, {path} is {actual} bytes": "{manifest} 记载大小为 {sealed}，{path} 实为 {actual} 字节",
    "states item {item}": "记载的证据为 {item}",
    "states sha256 {sealed}, {path} hashes to {actual}": "记载 sha256 为 {sealed}，{path} 实为 {actual}",
    "states size {sealed}, {path} is {actual} bytes": "记载大小为 {sealed}，{path} 实为 {actual} 字节",
    "equals its sealed manifest (sha256 {sha256})": "与其已签章的清单一致（sha256 {sha256}）",
    # the custody ledger and its Merkle proofs
    "no tree_size and root_hash": "缺少 tree_size 与 root_hash",
    "differs from the checkpoint the export manifest names": "与导出清单所指的检查点不符",
    "line {n}: inclusion proof fails ({why})": "第 {n} 行：包含证明不成立（{why}）",
    "line {n}: {why}": "第 {n} 行：{why}",
    "inclusion proof fails ({why})": "包含证明不成立（{why}）",
    "no custody entry records the receipt of item {item} with sha256 {sha256}":
        "没有保管链条目记录证据 {item}（sha256 {sha256}）的接收",
    "{n} custody entries, each proven in the sealed tree of {size}": "{n} 条保管链条目，均在已签章的 {size} 条目树中得到证明",
    "entry {seq} does not recompute to its hash": "条目 {seq} 重新计算的哈希与其所记不符",
    "entry {seq} belongs to another case": "条目 {seq} 属于另一案件",
    "entry {seq} out of order": "条目 {seq} 顺序错乱",
    "entry {seq} does not chain to entry {previous}": "条目 {seq} 未链接到条目 {previous}",
    "entry {seq}: proof is not against the sealed checkpoint": "条目 {seq}：证明并非针对已签章的检查点",
    "index out of range: leaf {leaf} is not in a tree of size {size}": "索引超出范围：叶 {leaf} 不在大小为 {size} 的树中",
    "proof has wrong length: it continues past the root": "证明长度有误：越过了根",
    "proof has wrong length: it stops below the root": "证明长度有误：未到达根",
    "size out of range: old size {old} is not between 0 and new size {new}": "大小超出范围：旧大小 {old} 不在 0 与新大小 {new} 之间",
    "roots differ for the same tree size {size}": "同一树大小 {size} 的根不同",
    "old root is not the root of the empty tree": "旧根不是空树的根",
    "{name} is {n} bytes, expected {expected}": "{name} 为 {n} 字节，应为 {expected}",
    "{name} is a {kind}, expected {expected}": "{name} 的类型为 {kind}，应为 {expected}",
    # CAdES, PAdES and SM2 seals
    "seals {target}, which is missing or unreadable": "所签文件 {target} 缺失或无法读取",
    "seal over {target} does not verify: {why}": "对 {target} 的签章验证未通过：{why}",
    "{subject}; time-stamped {time} by {tsa}": "{subject}；时间戳 {time}，由 {tsa} 签发",
    "the seal of {target} is missing": "{target} 的签章缺失",
    "not an SM2 seal record": "不是 SM2 签章记录",
    "made with an SM2 key that is not trusted ({why})": "所用 SM2 密钥不受信任（{why}）",
    "SM2/SM3 key {fingerprint}": "SM2/SM3 密钥 {fingerprint}",
    "PAdES-B-T by {subject}, time-stamped {time}": "PAdES-B-T 签章，签章者 {subject}，时间戳 {time}",
    "the SM2 key given on the command line": "命令行给出的 SM2 密钥",
    "the SM2 key given": "所给出的 SM2 密钥",
    "no SM2 key vouched for by a verified export manifest": "没有经验证的导出清单所担保的 SM2 密钥",
    "the SM2 keys in {file}, vouched for by the CAdES-sealed export manifest": "{file} 中的 SM2 密钥，由 CAdES 签章的导出清单担保",
    "the SM2 keys the CAdES-sealed record vouches for": "CAdES 签章的归档记录所担保的 SM2 密钥",
    "the SM2 keys the record names (its own seal failed)": "归档记录所列的 SM2 密钥（其自身签章未通过）",
    "no SM2 key vouched for by a verified record": "没有经验证的归档记录所担保的 SM2 密钥",
    "seal is a CMS object but not SignedData": "签章是 CMS 对象，但不是 SignedData",
    "seal is not well-formed DER CMS: {why}": "签章不是格式正确的 DER CMS：{why}",
    "seal carries {n} signature time-stamp tokens, expected 1": "签章带有 {n} 个签名时间戳令牌，应为 1 个",
    "seal has {n} signers, expected exactly 1": "签章有 {n} 个签名者，应恰为 1 个",
    "seal carries no signature time-stamp (CAdES-B-T required)": "签章未带签名时间戳（须为 CAdES-B-T）",
    "seal embeds its content; a detached seal is expected": "签章内嵌了内容；应为分离式签章",
    "seal digest algorithm {algorithm} is not accepted": "不接受签章摘要算法 {algorithm}",
    "seal lacks the signingCertificateV2 attribute (not CAdES)": "签章缺少 signingCertificateV2 属性（不是 CAdES）",
    "seal must carry exactly one signature time-stamp token (CAdES-B-T)": "签章必须恰带一个签名时间戳令牌（CAdES-B-T）",
    "seal is structurally broken: {why}": "签章结构已损坏：{why}",
    "seal could not be validated: {why}": "签章无法验证：{why}",
    "data does not match the seal's message digest (the data, or the seal's digest, was altered)":
        "数据与签章的消息摘要不符（数据或签章中的摘要已被改动）",
    "seal signature is invalid (signed attributes or signature value altered)": "签章的签名无效（签名属性或签名值已被改动）",
    "time-stamp token does not cover this seal's signature value (token or signature altered)":
        "时间戳令牌未覆盖本签章的签名值（令牌或签名已被改动）",
    "time-stamp token signature is invalid (token altered)": "时间戳令牌的签名无效（令牌已被改动）",
    "e-seal certificate {subject} is not trusted: {why}": "电子印章证书 {subject} 不受信任：{why}",
    "time-stamping authority {subject} is not trusted: {why}": "时间戳机构 {subject} 不受信任：{why}",
    "no path to a trusted root": "没有通往受信任根证书的路径",
    "not a readable PDF: {why}": "不是可读取的 PDF：{why}",
    "PDF carries no signature": "PDF 未带签名",
    "signature {field} could not be validated: {why}": "签名 {field} 无法验证：{why}",
    "signature {field} is structurally broken: {why}": "签名 {field} 结构已损坏：{why}",
    "signature {field} does not cover the whole document (coverage {coverage}, later changes {changes})":
        "签名 {field} 未覆盖整个文档（覆盖范围 {coverage}，其后改动 {changes}）",
    "signature {field}: {why}": "签名 {field}：{why}",
    "signed bytes do not match the signature's digest (document altered)": "签名所覆盖的字节与签名摘要不符（文档已被改动）",
    "signature value is invalid": "签名值无效",
    "signer certificate is not trusted ({why})": "签章者证书不受信任（{why}）",
    "no signature time-stamp (PAdES-B-T required)": "未带签名时间戳（须为 PAdES-B-T）",
    "signature time-stamp is altered or invalid": "签名时间戳已被改动或无效",
    "time-stamping authority is not trusted ({why})": "时间戳机构不受信任（{why}）",
    "document was modified after sealing beyond validation-data updates (does not cover the whole document)":
        "文档在签章后被改动，超出验证数据更新的范围（签名未覆盖整个文档）",
    "SM2 seal is not a JSON object": "SM2 签章不是 JSON 对象",
    "SM2 seal was made with a different key than the expected one (seal key {key}…, expected {expected}…)":
        "SM2 签章所用密钥与指定密钥不同（签章密钥 {key}…，指定密钥 {expected}…）",
    "SM2 seal algorithm is {algorithm}, expected {expected}": "SM2 签章算法为 {algorithm}，应为 {expected}",
    "SM2 seal distinguishing id is unusable: {why}": "SM2 签章的可辨别标识不可用：{why}",
    "SM2 seal public key is not a valid SM2 public key": "SM2 签章的公钥不是有效的 SM2 公钥",
    "expected SM2 public key cannot be read": "无法读取指定的 SM2 公钥",
    "SM2 signature is not base64 DER SEQUENCE {r, s}": "SM2 签名不是 base64 编码的 DER SEQUENCE {r, s}",
    "SM2 signature is not in canonical DER": "SM2 签名不是规范 DER 编码",
    "SM2 signature values r, s are out of range": "SM2 签名值 r、s 超出范围",
    "SM2 signature could not be checked": "无法核验 SM2 签名",
    "SM2 signature does not match the data (data or signature altered)": "SM2 签名与数据不符（数据或签名已被改动）",
    "distinguishing id must be ASCII": "可辨别标识必须为 ASCII",
    "distinguishing id is too long (ENTL is 16 bits of bit length)": "可辨别标识过长（ENTL 为 16 位的比特长度）",
    "point is not on the SM2 curve": "点不在 SM2 曲线上",
    # case archive records and the legal reviews in them
    "not UTF-8: byte {at} ({byte}) is changed or broken": "不是 UTF-8 编码：第 {at} 字节（{byte}）被改动或损坏",
    "not valid JSON at byte {at} (line {line}, column {column}): {why}": "第 {at} 字节（第 {line} 行第 {column} 列）起不是有效的 JSON：{why}",
    "not a {format} record": "不是 {format} 记录",
    "not in canonical form from byte {at}: it was rewritten after sealing": "自第 {at} 字节起不是规范格式：签章后被改写",
    "{format}, case {case}": "{format}，案件 {case}",
    "not a sealed review ({why})": "不是已签章的审核记录（{why}）",
    "its CAdES seal does not verify: {why}": "其 CAdES 签章验证未通过：{why}",
    "its SM2 seal: {why}": "其 SM2 签章：{why}",
    "its record is not {format}": "其记录不是 {format}",
    "{field} differs from the sealed review record": "{field} 与已签章的审核记录不符",
    "the sealed review is of another case": "已签章的审核记录属于另一案件",
    "record_sha256 differs from the record's hash": "record_sha256 与记录的哈希不符",
    "{checkpoint} review, {decision}, sealed {time}": "{checkpoint} 审核，{decision}，签章时间 {time}",
    "no sealed checkpoint ({why})": "没有已签章的检查点（{why}）",
    "tree size or root differs from the sealed statement": "树大小或根与已签章的声明不符",
    "tree of {size} entries, root {root}, sealed": "含 {size} 条目的树，根 {root}，已签章",
    "no proven custody entry records its receipt with sha256 {sha256}": "没有经证明的保管链条目记录其接收（sha256 {sha256}）",
    "sha256 {sha256} as received": "sha256 {sha256}，与接收时一致",
    "no proven custody entry records this review with its record's SHA-256": "没有经证明的保管链条目以其记录的 SHA-256 记录本次审核",
    "{record} is not what was sealed ({why})": "{record} 不是签章时的内容（{why}）",
    "the CAdES seal of {record} is missing": "{record} 的 CAdES 签章缺失",
    "the SM2 seal of {record} is missing": "{record} 的 SM2 签章缺失",
    "{path} holds {n} {record} files; a case archive ZIP holds one": "{path} 含 {n} 个 {record} 文件；案卷归档 ZIP 只应含一个",
    "{path} holds no {record}": "{path} 不含 {record}",
}
"""Every finding and reason the verifier writes: English pattern -> Chinese. A placeholder
whose name starts with ``why`` holds another reason, translated in turn."""


USAGE: dict[str, str] = {
    # argparse's errors that this command line can give, as argparse words them (Python 3.11 to 3.13)
    "argument {argument}: {why}": "参数 {argument}：{why}",
    "the following arguments are required: {arguments}": "缺少必需的参数：{arguments}",
    "unrecognized arguments: {arguments}": "无法识别的参数：{arguments}",
    "expected one argument": "需要一个值",
    "invalid choice: {value} (choose from {choices})": "无效的选择：{value}（可选：{choices}）",
    "ambiguous option: {option} could match {matches}": "有歧义的选项：{option} 可匹配 {matches}",
    "ignored explicit argument {value}": "此选项不接受值，却给出了 {value}",
    # the command's own
    "{path} does not exist": "{path} 不存在",
    "unknown time zone {zone} (expected an IANA name such as Asia/Shanghai)":
        "未知的时区 {zone}（应为 IANA 时区名，如 Asia/Shanghai）",
    "unknown language {lang} (expected one of {langs})": "未知的语言 {lang}（应为 {langs} 之一）",
}
"""Every usage error of the command line, argparse's and its own: English pattern -> Chinese."""

_CATALOGUES = {"details": DETAILS, "usage": USAGE}


_VALUE = r"(?:(?!; ).)+?"
"""A value inside a sentence: never across ``; ``, which joins sentences (``M states sha256 A,
P hashes to B; states size C, ...``), so each sentence is matched by its own pattern."""
_REASON = r".+?"


@lru_cache(maxsize=len(_CATALOGUES))
def _patterns(catalogue: str) -> list[tuple[re.Pattern[str], str]]:
    """The patterns of a catalogue (:data:`DETAILS`, :data:`USAGE`), those with the most fixed
    text first: a longer fixed text is the more specific sentence (``SHA-256 or size differs
    from the sealed {m}`` before ``{algorithm} differs from {m}``)."""
    compiled = []
    for english, chinese in _CATALOGUES[catalogue].items():
        parts = re.split(r"\{(\w+)\}", english)
        literal = "".join(parts[0::2])
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>{_REASON if p.startswith('why') else _VALUE})"
                        for i, p in enumerate(parts))
        compiled.append((len(literal), re.compile(regex, re.S), chinese))
    compiled.sort(key=lambda entry: -entry[0])
    return [(pattern, chinese) for _, pattern, chinese in compiled]


def _chinese(text: str, catalogue: str) -> str | None:
    for pattern, chinese in _patterns(catalogue):
        found = pattern.fullmatch(text)
        if found:
            values = {k: _zh(v, catalogue) if k.startswith("why") else v for k, v in found.groupdict().items()}
            return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group()), chinese)
    return None


def _zh(text: str, catalogue: str) -> str:
    """``text`` in Chinese: one sentence of the catalogue, or several joined by ``; ``; else
    as it is (a library's message)."""
    whole = _chinese(text, catalogue)
    if whole is not None:
        return whole
    parts = text.split("; ")
    if len(parts) > 1:
        return "；".join(_chinese(p, catalogue) or p for p in parts)
    return text


def detail(lang: str, text: str) -> str:
    """A finding's English ``text`` as the report shows it in ``lang``."""
    return _zh(text, "details") if lang == "zh" else text


def usage(lang: str, message: str) -> str:
    """A usage error's English ``message`` (argparse's or the command's) in ``lang``; as it
    is when no pattern of :data:`USAGE` knows it."""
    return _zh(message, "usage") if lang == "zh" else message
