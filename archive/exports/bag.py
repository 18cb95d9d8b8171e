"""The certified export's bag: what goes where, written as one ZIP stream.

The bag (RFC 8493) sits inside one top directory ``<case-number>-<export8>/``. Its layout,
member names and fixed texts are the export format, defined once in the offline verifier's
:mod:`evidence_verify.layout` (which draws the layout), so the verifier reads back exactly
what is written here, by the same names.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from asn1crypto import pem

from archive.custody import ledger
from archive.errors import ObjectNotFound
from archive.exports.bagzip import BagZipWriter, MemberChanged, MemberDigest, manifest_text, safe_member_name
from archive.exports.errors import ExportFailed
from archive.exports.certificate import certificate_pdf
from archive.exports.plan import SEAL_ROLES, Plan
from archive.seals.registry import certificates_in_seal
from archive.storage import ObjectStore
from archive.settings import CERTIFICATE_FONT
from archive.timefmt import DEFAULT_TIME_ZONE, check_zone
from archive.wording import Sentences
from evidence_verify import layout
from evidence_verify.ledger_format import canonical_json

EXPORT_FORMAT = layout.EXPORT_FORMAT

EXPORT_PROBLEMS = Sentences("export_problem", {
    "original_changed": "original of item {item} no longer matches its recorded sha256 (fixity failure)",
    "derived_changed": "derived {role} of item {item} no longer matches its sha256",
    "manifest_missing": "manifest of item {item} is missing from the store ({key})",
    "cades_missing": "CAdES seal of item {item} is missing from the store ({key})",
    "sm2_missing": "SM2 seal of item {item} is missing from the store ({key})",
    "no_tsa_certificate": "the time-stamp token carries no TSA certificate",
    "zip_altered": "the stored ZIP is no longer the one built (sha256 {sha256}); request a new export",
}, fields={"item": r"\S+", "role": r"[a-z0-9_]+", "key": r"\S+", "sha256": r"[0-9a-f]+"})
"""Why building an export's bag failed (the export's ``error``, its ``export_failed`` custody entry),
or why a built export may no longer be downloaded (``zip_altered``)."""


def _read_small(store: ObjectStore, key: str, version: str | None, sha256: str, *, what: str, item: str) -> bytes:
    """A seal object of ``item`` (``what``: ``manifest``, ``cades`` or ``sm2``), read whole and
    checked against the SHA-256 recorded when it was made: an altered seal is not certified."""
    try:
        data = b"".join(store.read(key, version_id=version))
    except ObjectNotFound as exc:
        raise ExportFailed(EXPORT_PROBLEMS.say(f"{what}_missing", item=item, key=key), code="missing_object") from exc
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ExportFailed(EXPORT_PROBLEMS.say("derived_changed", role=what, item=item), code="fixity_failed")
    return data


def _tsa_pem_from_seal(cades: bytes) -> bytes:
    """The TSA certificate(s) carried in a CAdES seal's time-stamp token, as PEM."""
    found = [cert for role, cert in certificates_in_seal(cades) if role == "tsa"]
    if not found:
        raise ExportFailed(EXPORT_PROBLEMS.say("no_tsa_certificate"), code="tsa_certificate_missing")
    return b"".join(pem.armor("CERTIFICATE", cert.dump()) for cert in found)


def sanitised_case_dir(case_number: str, export_id: str) -> str:
    """The bag's top directory: a portable form of the case number and the export id."""
    return f"{safe_member_name(case_number, fallback='case', limit=80)}-{export_id[:8]}"


def _seal_beside(bag: BagZipWriter, sealer: Any, path: str, data: bytes) -> None:
    """Write ``path`` and its two detached seals beside it."""
    bundle = sealer.seal(data)
    bag.add_bytes(path, data)
    bag.add_bytes(path + layout.CADES_SUFFIX, bytes(bundle.cades), compress=False)
    bag.add_bytes(path + layout.SM2_SUFFIX, canonical_json(bundle.sm2).encode())


def write_bag(
    fileobj, *, plan: Plan, store: ObjectStore, sealer: Any, organisation: str,  # type: ignore[no-untyped-def]
    contact: dict[str, str] | None = None, on_progress: Any = None, time_zone: str = DEFAULT_TIME_ZONE,
    font: Path = CERTIFICATE_FONT,
) -> list[MemberDigest]:
    """Write the whole bag for ``plan`` as a ZIP into ``fileobj``; return every member's digests
    (``font``: the TrueType font embedded in the certificate)."""
    root = sanitised_case_dir(plan.case["number"], plan.export_id)
    bag = BagZipWriter(fileobj, root=root, when=plan.when)
    try:
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            if on_progress is not None:
                on_progress(done, plan.total_bytes)

        # Payload first: the bytes that matter, each hashed as it streams and checked
        # against the hash taken at receipt, so a rotten original never leaves sealed.
        first_seal = None
        for item in plan.items:
            try:
                digest = bag.add_stream(
                    item["path"], store.read(item["storage_key"], version_id=item["storage_version"]),
                    size=item["size"], on_progress=progress, sha256=item["sha256"], sha512=item["recorded_sha512"],
                )
            except MemberChanged as exc:
                raise ExportFailed(EXPORT_PROBLEMS.say("original_changed", item=item["id"]),
                                   code="fixity_failed") from exc
            item["sha512"] = digest.sha512
            for d in item["derived"]:
                try:
                    dd = bag.add_stream(d["path"], store.read(d["storage_key"], version_id=d["storage_version"]),
                                        size=d["size"], on_progress=progress, sha256=d["sha256"])
                except MemberChanged as exc:
                    raise ExportFailed(EXPORT_PROBLEMS.say("derived_changed", role=d["role"], item=item["id"]),
                                       code="fixity_failed") from exc
                d["sha512"] = dd.sha512
            base = layout.item_manifest(item["id"])
            manifest, cades, sm2 = (_read_small(store, *item["seals"][r], what=r, item=item["id"]) for r in SEAL_ROLES)
            bag.add_bytes(base, manifest)
            bag.add_bytes(base + layout.CADES_SUFFIX, cades, compress=False)
            bag.add_bytes(base + layout.SM2_SUFFIX, sm2)
            first_seal = first_seal or cades

        entries = "".join(canonical_json(e) + "\n" for e in plan.entries).encode()
        bag.add_bytes(layout.LEDGER_ENTRIES, entries)
        bag.add_bytes(layout.CHECKPOINT, plan.checkpoint["statement"].encode())
        bag.add_bytes(layout.CHECKPOINT + layout.CADES_SUFFIX, plan.checkpoint["cades"], compress=False)
        bag.add_bytes(layout.CHECKPOINT + layout.SM2_SUFFIX, canonical_json(plan.checkpoint["sm2"] or {}).encode())
        _seal_beside(bag, sealer, layout.CONTINUITY_REPORT, canonical_json(plan.continuity).encode())

        bag.add_bytes("trust/chain.pem", plan.chain_pem)
        bag.add_bytes("trust/tsa.pem", _tsa_pem_from_seal(first_seal or plan.checkpoint["cades"]))
        bag.add_bytes(layout.SM2_KEYS, plan.sm2_keys_pem)

        payload_bytes = sum(d.size for d in bag.payload)
        for algorithm in layout.ALGORITHMS:
            bag.add_bytes(layout.payload_manifest(algorithm), manifest_text(bag.payload, algorithm))
        bag.add_bytes(layout.BAGIT, layout.BAGIT_TXT)
        bag.add_bytes(layout.BAG_INFO, _bag_info(plan, organisation, contact, payload_bytes, len(bag.payload), time_zone))

        pdf = certificate_pdf(plan=plan, root=root, organisation=organisation, zone=time_zone, font=font)
        sealed = io.BytesIO()
        sealer.seal_pdf(pdf, sealed)
        bag.add_bytes(layout.CERTIFICATE_PDF, sealed.getvalue(), compress=False)

        listed = sorted(bag.payload + bag.tags, key=lambda d: d.path)
        manifest_doc = {
            "format": EXPORT_FORMAT,
            "export": plan.export_id,
            "bag": root,
            "created_at": ledger.iso_utc(plan.when),
            "organisation": organisation,
            "case": plan.case,
            "people": plan.people,
            "checkpoint": {"tree_size": plan.checkpoint["tree_size"], "root_hash": plan.checkpoint["root_hash"]},
            "scope": plan.scope,
            "items": [
                {k: item[k] for k in ("id", "kind", "filename", "media_type", "size", "sha256", "sha512", "sm3",
                                      "parent", "device", "received_at", "recorded_start", "flags", "path")}
                | {"manifest": layout.item_manifest(item["id"]),
                   "derived": [{k: d[k] for k in ("role", "media_type", "size", "sha256", "sha512", "path")}
                               for d in item["derived"]]}
                for item in plan.items
            ],
            "continuity": plan.continuity["summary"],
            "files": [{"path": d.path, "size": d.size, "sha256": d.sha256} for d in listed],
        }
        _seal_beside(bag, sealer, layout.EXPORT_MANIFEST, canonical_json(manifest_doc).encode())
        tags = [d for d in bag.tags]
        for algorithm in layout.ALGORITHMS:
            bag.add_bytes(layout.tag_manifest(algorithm), manifest_text(tags, algorithm))
        return bag.payload + bag.tags
    finally:
        bag.close()


def _bag_info(plan: Plan, organisation: str, contact: dict[str, str] | None, octets: int, count: int,
              zone: str) -> bytes:
    def one_line(value: Any) -> str:
        return " ".join(str(value).split())

    fields = [
        ("Source-Organization", organisation),
        ("External-Identifier", plan.case["number"]),
        ("External-Description", f"Certified export of case {plan.case['number']}: {plan.case['title']}"),
        ("Bagging-Date", plan.when.astimezone(check_zone(zone)).date().isoformat()),  # the corps' date, as its pages
        ("Payload-Oxum", f"{octets}.{count}"),
        ("Bag-Size", _human_size(octets)),
        ("Bag-Group-Identifier", plan.case["id"]),
        ("Internal-Sender-Identifier", plan.export_id),
        ("Internal-Sender-Description",
         f"Requested by {plan.people['requested_by']}, approved by {plan.people['approved_by']}, "
         f"for {plan.people['recipient']}; custody ledger checkpoint {plan.checkpoint['tree_size']}"),
    ]
    for key in ("Contact-Name", "Contact-Email", "Contact-Phone"):
        if contact and contact.get(key):
            fields.append((key, contact[key]))
    return "".join(f"{k}: {one_line(v)}\n" for k, v in fields).encode()


def _human_size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} TB"
