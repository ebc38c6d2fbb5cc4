#!/usr/bin/env bash
# Set up (test extras included: Playwright driver, Korean vosk model, mypy), then check types and
# lint, then run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test,vosk-ko
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
