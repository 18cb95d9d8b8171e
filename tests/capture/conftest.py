"""Fixtures of the inspection tests (see :mod:`tests.capture.support`)."""

from tests.capture.support import capture_stack, site, tls_site  # noqa: F401 - pytest fixtures
