"""The ``evidence`` command line.

Exit codes: 0 all held; 1 a verification failed (the message names what); 2 bad usage
or configuration; 3 not finished yet: ``verify-case`` found nothing wrong but something
is still pending (listed), ``upload`` was interrupted (run it again to resume).
"""

from __future__ import annotations

from api.cli.root import main
# Each module registers its commands on ``main`` when imported.
from api.cli import keys, ops, uploads, users, verification  # noqa: E402,F401

__all__ = ["main"]
