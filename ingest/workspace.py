"""A worker's private copy of one original, fetched once per task run and re-hashed.

The steps in :mod:`ingest.pipeline` run the media tools on this copy; the original in
the store is only ever read.
"""

from __future__ import annotations

import re
from pathlib import Path

from archive.db import Database
from archive.scratch import scratch_dir
from archive.errors import VerificationFailed
from archive.evidence.fixity import ORIGINAL_PROBLEMS, check_object
from archive.evidence.items import ITEM_ERRORS
from archive.models import EvidenceItem
from archive.settings import Settings
from archive.storage import ObjectStore
from ingest.errors import StepFailed


class Workspace:
    """A private temporary directory holding one verified copy of an original.

    Used as a context manager around the steps of one task run, so the original is
    downloaded at most once per run, only when a step needs it.
    """

    def __init__(self, *, db: Database, store: ObjectStore, settings: Settings, item_id: str):
        self.db, self.store, self.settings, self.item_id = db, store, settings, item_id
        self._dir: Path | None = None
        self._original: Path | None = None

    def __enter__(self) -> Workspace:
        self._scratch = scratch_dir("work")
        self._dir = self._scratch.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._dir is not None:
            self._dir = None
            self._scratch.__exit__(None, None, None)

    @property
    def dir(self) -> Path:
        """The temporary directory (only inside ``with``)."""
        if self._dir is None:
            raise RuntimeError("Workspace used outside its with-block")
        return self._dir

    def item(self) -> EvidenceItem:
        """The item as currently stored (detached snapshot)."""
        with self.db.read() as session:
            item = session.get(EvidenceItem, self.item_id)
            if item is None:
                raise StepFailed(ITEM_ERRORS.say("not_found", item=self.item_id), code="item_not_found", status=404)
            return item

    def original(self) -> Path:
        """The original's bytes in a local file, streamed from the store and re-hashed.

        Raises VerificationFailed when the stored bytes no longer hash to the SHA-256
        taken at receipt, or a newer version hides the recorded one (nothing is derived
        from a damaged original).
        """
        if self._original is not None:
            return self._original
        item = self.item()
        # Keep the extension: some tools pick the demuxer from it (.ts, .dav, .h264).
        suffix = Path(item.original_filename).suffix
        suffix = suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,10}", suffix) else ""
        path = self.dir / f"original{suffix}"
        with path.open("wb") as fh:
            fault = check_object(self.store, key=item.storage_key, version=item.storage_version, size=item.size,
                                 digests={"sha256": item.sha256}, sink=fh) if item.size else None
        if fault is not None:
            path.unlink(missing_ok=True)
            problem = ORIGINAL_PROBLEMS.say(
                "original_changed_underived" if fault.what in ("size", "sha256") else "original_broken_underived",
                item=item.id, reason=fault.reason)
            raise VerificationFailed(problem, code="fixity_failed")
        self._original = path
        return path
