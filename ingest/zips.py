"""Reading ZIP archives a client sent: every name problem is a :class:`zipfile.BadZipFile`.

:class:`zipfile.ZipFile` decodes member names while it reads the central directory (and
again from each local header when a member is opened). A name whose bytes are not UTF-8
although the archive's general-purpose flag 0x800 says they are raises
:class:`UnicodeDecodeError`, which no caller expects of a damaged archive; here it is the
archive's fault like any other, so sniffing, document reading and bundle unpacking treat
such a file as what it is (not an Office file, an invalid bundle) instead of crashing.
"""

from __future__ import annotations

import zipfile
from typing import Any

__all__ = ["NAME_NOT_UTF8", "ZipReader"]

NAME_NOT_UTF8 = "a member name is not valid UTF-8 although the archive marks its names as UTF-8 (flag 0x800)"


class ZipReader(zipfile.ZipFile):
    """A :class:`zipfile.ZipFile` opened for reading whose name-decoding failures are ``BadZipFile``."""

    def __init__(self, file: Any) -> None:
        try:
            super().__init__(file)  # closes what it opened when it raises
        except UnicodeDecodeError as exc:
            raise zipfile.BadZipFile(NAME_NOT_UTF8) from exc

    def open(self, name: Any, mode: str = "r", pwd: bytes | None = None, *, force_zip64: bool = False) -> Any:
        try:
            return super().open(name, mode, pwd, force_zip64=force_zip64)
        except UnicodeDecodeError as exc:  # the member's local header names it in bytes that are not UTF-8
            raise zipfile.BadZipFile(NAME_NOT_UTF8) from exc
