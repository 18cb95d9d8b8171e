"""Real faults the tests cause from outside the service: a slow ffprobe, a network that
goes quiet, a disk that fills up. Nothing in the service knows it is being tested."""

from __future__ import annotations

import errno
import math
import os
import shlex
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.tools import need, unavailable


def slow_ffprobe(directory: Path, seconds: float, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with an ffprobe first on PATH that takes ``seconds`` longer, as on a slow
    disk: it waits while its caller lives (a killed worker leaves no waiting probe behind),
    then runs the real ffprobe."""
    real = need("ffprobe")
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "ffprobe"
    script.write_text(
        "#!/bin/sh\n"
        f"end=$(( $(date +%s) + {math.ceil(seconds)} ))\n"
        'while [ "$(date +%s)" -lt "$end" ]; do\n'
        '    kill -0 "$PPID" 2>/dev/null || exit 1\n'
        "    sleep 0.2\n"
        "done\n"
        f'exec {shlex.quote(real)} "$@"\n'
    )
    script.chmod(0o755)
    return dict(env, PATH=f"{directory}{os.pathsep}{env.get('PATH', os.defpath)}")


class Link:
    """A TCP link to ``target_port`` on 127.0.0.1 that goes quiet: it carries its first
    ``carry`` connections, then holds every new one without passing a byte (the client
    waits as on a dead network) until :meth:`restore`, which drops the held ones and
    carries what comes after."""

    def __init__(self, target_port: int, *, carry: int):
        self.target_port, self.carry = target_port, carry
        self.held = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._sockets: list[socket.socket] = []
        self._holding: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def restore(self) -> None:
        with self._lock:
            self.carry = None  # type: ignore[assignment]
            held, self._holding = self._holding, []
        for sock in held:
            sock.close()

    def close(self) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets + self._holding, []
        for sock in sockets:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self.carry is not None and self.carry <= 0:
                    self._holding.append(client)
                    self.held.set()
                    continue
                if self.carry is not None:
                    self.carry -= 1
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


@contextmanager
def small_disk(path: Path, *, mib: int, inodes: int | None = None) -> Iterator[Path]:
    """A disk of ``mib`` MiB of its own at ``path`` (a tmpfs, mounted for the test and
    unmounted after it), for a test to fill; unavailable where the test may not mount one.
    ``inodes``: at most that many files and folders (a tmpfs makes folders without using its
    blocks, a real disk does not: see :func:`use_up_inodes`)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={mib}m" + (f",nr_inodes={inodes}" if inodes else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        unavailable(f"cannot mount a small tmpfs to fill (root is needed): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to its last byte with a file of its own (removing that file frees it)."""
    filler = disk / "filler"
    with open(filler, "ab", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler


def use_up_inodes(disk: Path) -> Path:
    """Make empty files on ``disk`` (a :func:`small_disk` with ``inodes``) until it can make no
    more, so that making a file or a folder there fails with ENOSPC, as on a full real disk;
    returns their folder (removing it frees them)."""
    folder = disk / "inodes"
    folder.mkdir()
    for n in range(1_000_000):
        try:
            (folder / str(n)).touch()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            return folder
    raise AssertionError(f"{disk} has no limit of files")
