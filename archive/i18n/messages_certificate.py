"""The message catalogue's part for the certificate of a certified export (``certificate.pdf``),
which says everything in Chinese and then in English: merged into
:data:`archive.i18n.messages.MESSAGES`, same rules (stable ids, both languages, the same
placeholders). Text here is plain: the builder escapes it for the PDF."""

from __future__ import annotations

CERTIFICATE_MESSAGES: dict[str, dict[str, str]] = {
    "certificate.title": {"zh": "核证导出证明书", "en": "Certificate of certified export"},
    "certificate.pdf_title": {"zh": "案件 {number} 核证导出", "en": "Certified export of case {number}"},
    "certificate.issued": {
        "zh": "由 {organisation} 于 {when} 出具。本证明书已加盖电子签章（PAdES-B-T，附 RFC 3161 时间戳）；"
              "所列每个文件及其 SHA-256 均载于同样加盖电子签章的 export-manifest.json。",
        "en": "Issued by {organisation} on {when}. This certificate is sealed (PAdES-B-T, with an RFC 3161 "
              "time-stamp); every file it names is listed with its SHA-256 in export-manifest.json, which is "
              "sealed as well."},
    "certificate.case": {"zh": "案件", "en": "Case"},
    "certificate.field": {"zh": "项目", "en": "Field"},
    "certificate.value": {"zh": "内容", "en": "Value"},
    "certificate.case_number": {"zh": "案件编号", "en": "Case number"},
    "certificate.case_title": {"zh": "案由", "en": "Title"},
    "certificate.unit": {"zh": "办案单位", "en": "Unit"},
    "certificate.case_status": {"zh": "案件状态", "en": "Case status"},
    "certificate.scope": {"zh": "导出范围", "en": "Scope"},
    "certificate.scope_all": {"zh": "本案全部证据，共 {count} 件", "en": "the whole case: all {count} items"},
    "certificate.scope_selected": {"zh": "选取的证据 {count} 件（本案共 {total} 件）",
                                   "en": "a selection: {count} of the case's {total} items"},
    "certificate.export": {"zh": "导出编号", "en": "Export"},
    "certificate.bag": {"zh": "导出包目录", "en": "Bag directory"},
    "certificate.requested_by": {"zh": "申请人", "en": "Requested by"},
    "certificate.approved_by": {"zh": "批准人", "en": "Approved by"},
    "certificate.approved": {"zh": "{who}，{at}", "en": "{who} at {at}"},
    "certificate.recipient": {"zh": "接收人", "en": "Recipient"},
    "certificate.checkpoint": {"zh": "已签章的保管链检查点", "en": "Sealed ledger checkpoint"},
    "certificate.checkpoint_value": {"zh": "日志条数 {size}，根哈希 {root}", "en": "tree size {size}, root {root}"},
    "certificate.items": {"zh": "证据", "en": "Evidence items"},
    "certificate.item_file": {"zh": "证据 / 导出包内文件", "en": "Item / file in the bag"},
    "certificate.kind": {"zh": "类型", "en": "Kind"},
    "certificate.size": {"zh": "大小（字节）", "en": "Size (bytes)"},
    "certificate.received": {"zh": "接收时间", "en": "Received"},
    "certificate.derived": {"zh": "派生文件：{role}", "en": "derived {role}"},
    "certificate.timeline": {"zh": "保管链记录", "en": "Custody timeline"},
    "certificate.timeline_cut": {"zh": "共 {total} 条，此处列出前 {shown} 条；全部见 ledger/entries.jsonl。",
                                 "en": "The first {shown} of {total} entries; all are in ledger/entries.jsonl."},
    "certificate.seq": {"zh": "序号", "en": "Seq"},
    "certificate.time": {"zh": "时间", "en": "Time"},
    "certificate.actor": {"zh": "操作人", "en": "Actor"},
    "certificate.action": {"zh": "操作", "en": "Action"},
    "certificate.item": {"zh": "证据", "en": "Item"},
    "certificate.continuity": {"zh": "录像连续性", "en": "Continuity of recording"},
    "certificate.continuity_summary": {
        "zh": "中断 {gaps} 处：{accepted} 处的说明已由审核人员接受，{unresolved} 处未接受。结论：{status}。",
        "en": "{gaps} gap(s); {accepted} explained and accepted by a reviewer; {unresolved} not accepted. "
              "Status: {status}."},
    "certificate.level_device": {"zh": "层级 / 设备", "en": "Level / device"},
    "certificate.span": {"zh": "起止时间", "en": "From - to"},
    "certificate.duration": {"zh": "时长", "en": "Duration"},
    "certificate.cause": {"zh": "原因", "en": "Cause"},
    "certificate.explanation": {"zh": "说明", "en": "Explanation"},
    "certificate.review": {"zh": "审核", "en": "Review"},
    "certificate.no_explanation": {"zh": "（无）", "en": "(none)"},
    "certificate.verify": {"zh": "如何核验本导出", "en": "How to verify this export"},
    "certificate.verify_root": {
        "zh": "需要本单位的根证书（ROOT.pem），请通过可信渠道向本单位获取，不要取自本导出包。"
              "使用本项目的离线核验工具（本单位证据系统的 /api/v1/trust/evidence-verifier.tar.gz，或其代码的 verifier/ 目录；"
              "pip install 该安装包即可；核验时无需服务器，无需账号）：",
        "en": "You need the organisation's root certificate (ROOT.pem), obtained from the organisation through "
              "a channel you trust, not from this export. With the project's offline verifier, installed on its "
              "own (pip install the package the organisation's archive serves at /api/v1/trust/evidence-verifier.tar.gz, "
              "or its code's verifier/ folder; checking needs no server and no account):"},
    "certificate.verify_tools": {"zh": "或在解压后的导出包目录中，用通用工具逐项核验：",
                                 "en": "Or each part with standard tools, from inside the unpacked bag directory:"},
    "certificate.verify_items": {
        "zh": "每个 items/<id>/manifest.json 载明一个原件的 SHA-256，须与 manifest-sha256.txt 中该原件的一行相同。"
              "ledger/entries.jsonl 的每一行都附有 RFC 9162 包含证明，对应 ledger/checkpoint.json 中已签章的检查点。",
        "en": "Each items/<id>/manifest.json states the SHA-256 of one original; it must equal the line for that "
              "original in manifest-sha256.txt. Each line of ledger/entries.jsonl carries an RFC 9162 inclusion "
              "proof against the sealed checkpoint in ledger/checkpoint.json."},
    "continuity_status.continuous": {"zh": "录像连续", "en": "continuous"},
    "continuity_status.explained": {"zh": "中断均已说明并接受", "en": "every gap explained and accepted"},
    "continuity_status.unexplained_gaps": {"zh": "有未说明或未接受的中断", "en": "gaps not explained or not accepted"},
}
