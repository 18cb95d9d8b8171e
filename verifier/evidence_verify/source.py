"""Reading an export's members: from its ZIP, from the unpacked bag, or from inside it.

A source lists every member with its size, by path relative to the bag's top directory,
and opens members for reading. It never follows a link out of the bag and refuses
member names that could escape it; what it refuses is reported as a finding.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path
from typing import BinaryIO

from .errors import ExportUnreadable
from .layout import BAGIT
from .report import Finding


NAME_NOT_UTF8 = "a member name is not valid UTF-8 although the ZIP marks its names as UTF-8 (flag 0x800)"


def open_zip(path: Path) -> zipfile.ZipFile:
    """The ZIP file at ``path`` for reading. :class:`ExportUnreadable` when it is none, or names
    a member in bytes that are not the UTF-8 it claims (zipfile raises UnicodeDecodeError)."""
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ExportUnreadable(f"{path} is neither a ZIP file nor a directory") from exc
    except UnicodeDecodeError as exc:
        raise ExportUnreadable(f"{path}: {NAME_NOT_UTF8}") from exc


class Source:
    """The files of a bag, by path relative to its top directory."""

    label: str
    """What the user gave, for messages."""
    bag: str
    """Name of the bag's top directory."""
    sizes: dict[str, int]
    """Size of every member, by path inside the bag."""
    problems: list[Finding]
    """Members refused while listing (unsafe names, links, duplicates)."""

    def open(self, name: str) -> BinaryIO:  # pragma: no cover - interface
        """Open member ``name`` (a key of :attr:`sizes`) for reading."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds open."""
        return None


def unsafe_name(name: str) -> str | None:
    """Why ``name`` is not a safe, normalised member path, or None when it is."""
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        return "unsafe or non-normalised member name"
    if any(ord(ch) < 32 for ch in name):
        return "control character in member name"
    return None


class ZipSource(Source):
    """An export as the single ZIP file the server hands out (one top directory)."""

    def __init__(self, path: Path):
        self.label = str(path)
        self.zip = open_zip(path)
        self.problems = []
        self.sizes = {}
        self.infos: dict[str, zipfile.ZipInfo] = {}
        tops = {i.filename.split("/", 1)[0] for i in self.zip.infolist()}
        self.bag = sorted(tops)[0] if len(tops) == 1 else ""
        if len(tops) != 1:
            self.problems.append(Finding("bag", "", False, f"the ZIP must hold one top directory, found {sorted(tops)}"))
        for info in self.zip.infolist():
            if info.is_dir():
                continue
            top, _, rel = info.filename.partition("/")
            bad = unsafe_name(info.filename) or (None if rel else "member outside the bag directory")
            if top != self.bag and not bad:
                bad = "member outside the bag directory"
            if bad:
                self.problems.append(Finding("bag", info.filename, False, bad))
                continue
            if rel in self.sizes:
                self.problems.append(Finding("bag", rel, False, "member appears twice in the ZIP"))
                continue
            self.sizes[rel] = info.file_size
            self.infos[rel] = info

    def open(self, name: str) -> BinaryIO:
        return self.zip.open(self.infos[name])

    def close(self) -> None:
        self.zip.close()


class DirSource(Source):
    """An unpacked export: the bag directory, the directory holding only it, or ``.`` inside it."""

    def __init__(self, path: Path):
        self.problems = []
        self.sizes = {}
        # Absolute, so that '.' run inside the bag gives the bag its own directory's name.
        path = path.absolute()
        if not (path / BAGIT).exists():
            subdirs = [p for p in path.iterdir() if p.is_dir()]
            others = [p for p in path.iterdir() if not p.is_dir()]
            if len(subdirs) == 1 and not others:
                path = subdirs[0]
        self.root = path
        self.label = str(path)
        self.bag = path.name
        for p in sorted(path.rglob("*")):
            rel = p.relative_to(path).as_posix()
            mode = p.lstat().st_mode
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                self.problems.append(Finding("bag", rel, False, "not a regular file (symlink or device)"))
                continue
            bad = unsafe_name(rel)
            if bad:
                self.problems.append(Finding("bag", rel, False, bad))
                continue
            self.sizes[rel] = p.stat().st_size

    def open(self, name: str) -> BinaryIO:
        return open(self.root / name, "rb")


def open_source(path: Path) -> Source:
    """The export at ``path``: a directory (the bag, its parent, or ``.``) or a ZIP file."""
    if path.is_dir():
        return DirSource(path)
    return ZipSource(path)
