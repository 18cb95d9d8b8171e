"""The ``evidence`` command line.

Exit codes: 0 all held; 1 a verification failed (the message names what); 2 bad usage
or configuration; 3 not finished yet: ``verify-case`` found nothing wrong but something
is still pending (listed), ``upload`` was interrupted (run it again to resume); 4 not
checked: ``verify-item`` or ``verify-case`` met a server that did not answer (the object
store, the TSA), which is no finding (run it again once it answers).
"""

from __future__ import annotations

from api.cli.root import main
# Each module registers its commands on ``main`` when imported.
from api.cli import keys, ops, uploads, users, verification  # noqa: E402,F401

__all__ = ["main"]
