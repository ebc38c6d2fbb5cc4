#!/usr/bin/env bash
# Installs what a fresh machine lacks: Debian tools (when run as root or with sudo) and a
# project virtualenv in .venv with the package and its extras. Safe to run again: it only
# installs what is missing. Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh test,vosk-ko
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-}"

need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v sox >/dev/null || need_apt+=(sox libsox-fmt-all)
command -v sipp >/dev/null || need_apt+=(sip-tester)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v kamailio >/dev/null || [ -x /usr/sbin/kamailio ] || need_apt+=(kamailio)
# SIP over TLS at the front (sip.tls_port): Kamailio's tls module is a package of its own.
compgen -G '/usr/lib/*/kamailio/modules/tls.so' >/dev/null || compgen -G '/usr/lib/kamailio/modules/tls.so' >/dev/null \
  || need_apt+=(kamailio-tls-modules)
ldconfig -p 2>/dev/null | grep -q libsndfile || need_apt+=(libsndfile1)
if [[ ",$EXTRAS," == *",test,"* ]] && [ ! -x /usr/bin/chromium ]; then need_apt+=(chromium); fi

if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian starts mosquitto/kamailio services on install when it can; the project runs its own.

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
stamp=".venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)-${EXTRAS//,/_}"
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages${EXTRAS:+ with extras [$EXTRAS]}" >&2
  spec="."
  [ -n "$EXTRAS" ] && spec=".[$EXTRAS]"
  .venv/bin/pip install -q -e "$spec"
  # numba kernels of librosa compiled once, here, before any worker starts (speech/prosody.py)
  .venv/bin/python -c "from speech.prosody import precompile; precompile()"
  touch "$stamp"
fi
