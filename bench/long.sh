#!/usr/bin/env bash
# The long mode of the property-based tests: 500 random curated libraries, and 500 random fault schedules
# with random kills (CI runs a small, derandomized number of each). About 20 to 40 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
# pytest-timeout limits a test function, and here one function runs 500 examples: allow 90 minutes.
EXT2INT_LONG=1 exec "${PYTHON:-.venv/bin/python}" -m pytest tests/test_property.py -q --timeout=5400 "$@"
