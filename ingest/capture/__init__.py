"""Remote online inspection capture: a fresh headless Chromium (Playwright) whose every
request goes through our policy-checking fetcher into WARC, packaged as a signed WACZ,
with screenshots, a screen recording, the environment and, for a livestream, the stream."""
