"""Remote online inspections (网络远程勘验): an officer's request to capture a website or a
livestream for a case, its lifecycle (queued, capturing, sealing, done or failed) and the
SSRF policy the capture browser obeys. The capture itself lives in :mod:`ingest.capture`."""
