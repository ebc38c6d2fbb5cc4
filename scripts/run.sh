#!/usr/bin/env bash
# The main job on embedded defaults: set up, then answer SIP calls into the IVR on
# 127.0.0.1:5060 with SQLite, an embedded MQTT broker and the shipped English model.
# The first run generates the console token into var/secrets/ and prints the console URL.
# `scripts/run.sh --secure`: every hop encrypted (SIP over TLS on 5061 with SRTP, HTTPS, MQTT over
# TLS with a password); certificates are made in var/certs/ when missing (clients trust ca.pem).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/callcenter serve "$@"
