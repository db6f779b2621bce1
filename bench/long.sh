#!/usr/bin/env bash
# The long mode of the property-based tests: 500 random curated libraries, 500 random fault schedules
# with random kills, and 500 moves undone (CI runs a small, derandomized number of each); and every kill point
# of an undo (CI: a sample). About 40 to 70 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
# pytest-timeout limits a test function, and here one function runs 500 examples: allow 90 minutes.
EXT2INT_LONG=1 exec "${PYTHON:-.venv/bin/python}" -m pytest tests/test_property.py tests/test_undo.py -q --timeout=5400 "$@"
