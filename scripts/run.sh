#!/usr/bin/env bash
# The main job on embedded defaults: set up, then answer SIP calls into the IVR on
# 127.0.0.1:5060 with SQLite, an embedded MQTT broker and the shipped English model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/callcenter serve "$@"
