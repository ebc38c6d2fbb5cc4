#!/usr/bin/env bash
# Set up (test extras included: Playwright driver, Korean vosk model), then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test,vosk-ko
exec .venv/bin/python -m pytest "$@"
