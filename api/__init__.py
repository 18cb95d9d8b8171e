"""Entry points: the HTTP API and the ``evidence`` command line."""
