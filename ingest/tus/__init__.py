"""Resumable uploads: the tus 1.0 protocol's service side (core, creation,
creation-with-upload, termination, checksum, expiration).

How an upload travels
---------------------
* **Creation** validates the metadata exactly as a direct upload is validated
  (:func:`archive.evidence.receiving.check_incoming`), reserves the future item id, and opens a
  *staged object* in the store aimed at that item's final key
  (:meth:`archive.storage.Staging.begin`: an append file outside the vaults
  locally, a real S3 multipart upload fed through a one-part local spool on S3). The
  backend's handle is kept in ``uploads.state`` so any process can carry on.
* **PATCH** bodies stream straight into the stage in blocks of about 1 MiB; nothing
  holds a whole file (or a whole PATCH) in memory. During a long PATCH the stage reports
  durable progress about every :data:`~ingest.tus.streaming.SEGMENT` bytes (bytes on disk, or
  S3 parts uploaded, while the next ones arrive) and the offset is committed, so a process
  killed mid-request loses at most a segment and the parts in flight; a client's next HEAD tells it
  where to resume, and bytes staged past the recorded offset are dropped on the next
  write. With ``Upload-Checksum`` the whole PATCH is held retractable until its
  checksum is verified; a mismatch (460) or a cut-off body discards that PATCH.
* **Hash state.** hashlib objects cannot be serialised, so the running SHA-256 lives
  only in this process (:class:`~ingest.tus.hashing.LiveUploads`, keyed by upload id, tagged with the
  offset it has consumed). When it is missing or behind — the API process restarted,
  or another replica took the upload over — hashing is not attempted on the rest
  alone: at completion the committed object is streamed back from the store once and
  hashed in full. That costs one extra read of the file, only on that path, and is
  always correct; S3 cannot read back parts of an unfinished multipart upload, so
  "re-derive at resume" would not work there.
* **Completion** (offset reaches Upload-Length) commits the stage under the item's key
  (unlocked), checks the declared SHA-256 and locks the object with COMPLIANCE
  retention through the same code as the direct upload
  (:func:`archive.evidence.receiving.check_received` and :func:`~archive.evidence.receiving.keep_original`:
  one row, one ``evidence_received`` entry; content the case already holds, even if it is
  registered at the same moment, completes the upload as that item). The item id was reserved at creation and
  the upload row is locked while the item is written, so a retried last PATCH or two
  racing ones yield one item. A mismatch discards the object and fails the upload
  (``hash_mismatch``): nothing is kept, and the ledger says so.
* **Expiry**: an open upload untouched for ``upload_expiry_hours`` is removed by
  :func:`~ingest.tus.lifecycle.expire_uploads` (Celery beat task ``evidence.expire_uploads``; safe at any
  time) and never becomes evidence; the same task then removes older leftovers no
  upload names (:func:`~ingest.tus.lifecycle.sweep_debris`).

Limits, honestly: concurrent PATCHes of one upload are refused (423) within a process;
across API replicas only the offset check protects them, so replicas should route an
upload to one process (they must share ``EVIDENCE_UPLOAD_DIR`` for the S3 spool anyway).

The package, by job: :mod:`~ingest.tus.headers` (protocol constants, header parsing),
:mod:`~ingest.tus.hashing` (the per-process hash registry), :mod:`~ingest.tus.streaming`
(a PATCH body into the stage), :mod:`~ingest.tus.lifecycle` (create, append, complete,
terminate, expire), :mod:`~ingest.tus.errors`. Callers use the names exported here.
"""

from __future__ import annotations

from ingest.tus.errors import ChecksumMismatch, UploadBusy, UploadGone
from ingest.tus.hashing import LiveUploads
from ingest.tus.headers import CHECKSUM_ALGORITHMS, EXTENSIONS, MAX_SIZE, TUS_VERSION, parse_checksum, parse_metadata
from ingest.tus.lifecycle import (
    AppendResult,
    UploadInfo,
    append,
    complete,
    create_upload,
    expire_uploads,
    finish_received,
    finish_received_uploads,
    load_upload,
    status,
    sweep_debris,
    terminate,
)
from ingest.tus.streaming import SEGMENT

__all__ = [
    "CHECKSUM_ALGORITHMS", "EXTENSIONS", "MAX_SIZE", "SEGMENT", "TUS_VERSION",
    "AppendResult", "ChecksumMismatch", "LiveUploads", "UploadBusy", "UploadGone", "UploadInfo",
    "append", "complete", "create_upload", "expire_uploads", "finish_received", "finish_received_uploads", "load_upload", "parse_checksum", "parse_metadata",
    "status", "sweep_debris", "terminate",
]
