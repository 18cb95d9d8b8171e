"""``python -m api.cli``: the same command line as ``evidence``."""

from api.cli import main

main()
