"""Secrets never reach the access log."""

from __future__ import annotations

import logging

from api.logs import RedactSecrets


def test_signed_link_is_logged_without_its_signature():
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/v1/exports/e1/download?expires=99&user=u1&sig=abcdef0123", "1.1", 200),
        None,
    )
    assert RedactSecrets().filter(record)
    line = record.getMessage()
    assert "abcdef0123" not in line and "sig=[redacted]" in line and "expires=99" in line
