#!/usr/bin/env bash
# Sets up, builds and runs every test: the fuzz targets (clang), the whole suite under
# ASan+UBSan (dev preset), then the whole suite in Release with brief fuzz runs. The last lines
# are ctest's summary of the Release run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
JOBS=${JOBS:-$(nproc)}

echo "== fuzz targets (clang, libFuzzer)"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$JOBS"

echo "== ASan + UBSan suite (dev preset)"
cmake --preset dev >/dev/null
cmake --build --preset dev -j "$JOBS"
ctest --preset dev -j "$JOBS"

echo "== Release suite"
cmake --preset release -DGLASSBOX_FUZZ_BIN_DIR="$PWD/build/fuzz" >/dev/null
cmake --build --preset release -j "$JOBS"
ctest --preset release -j "$JOBS"
