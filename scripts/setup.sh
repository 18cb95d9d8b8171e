#!/usr/bin/env bash
# Set up everything the service and its tests need on a fresh machine:
# system tools (ffmpeg, SoftHSM2, OpenSC, poppler, openssl, chromium) when missing and we are root,
# a virtual environment in .venv with the project and its test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
command -v softhsm2-util >/dev/null || need_apt+=(softhsm2)
command -v pkcs11-tool >/dev/null || need_apt+=(opensc)
command -v pdfsig >/dev/null || need_apt+=(poppler-utils)
command -v certutil >/dev/null || need_apt+=(libnss3-tools)
command -v openssl >/dev/null || need_apt+=(openssl)
# Debian's Chromium is the remote-inspection capture browser and the one the browser tests
# (tests/browser/) drive with Playwright, which never downloads a browser of its own here.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# Node.js runs the real OpenID Provider (oidc-provider) the single sign-on tests use.
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
# wrk, a C HTTP load generator: bench/bench_reads.py's clients (Python client threads would
# take the server's cores from it).
command -v wrk >/dev/null || need_apt+=(wrk)
# A Chinese font, so the browser (and the workspace's screenshots) draws the Chinese pages and
# each export's certificate.pdf embeds it (EVIDENCE_EXPORT_CERTIFICATE_FONT names this file).
[ -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || need_apt+=(fonts-wqy-zenhei)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${need_apt[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${need_apt[*]} (install them, e.g. apt-get install ${need_apt[*]})" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml verifier/pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -U pip
  # The offline verifier (verifier/) is its own distribution; the project depends on it.
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ./verifier -e '.[test]'
  rm -f .venv/.installed-* && touch "$stamp"
fi

# The test OpenID Provider's packages, exactly as locked in tests/oidc/package-lock.json.
if command -v npm >/dev/null; then
  oidc_stamp=tests/oidc/node_modules/.installed-$(sha256sum tests/oidc/package-lock.json | cut -c1-16)
  if [ ! -f "$oidc_stamp" ]; then
    npm ci --prefix tests/oidc --no-audit --no-fund --silent
    touch "$oidc_stamp"
  fi
fi

# The project's own modules compiled once, as an installed package's are. Where Python is told
# not to write bytecode (PYTHONDONTWRITEBYTECODE, as on CI machines) every command otherwise
# compiled them all again at each start: a third of `evidence verify-case`'s start-up. A module
# edited later is compiled afresh when imported (Python compares the source's time and size).
.venv/bin/python -m compileall -q -j 0 archive api ingest signing workers verifier/evidence_verify >/dev/null
