#!/usr/bin/env bash
# Runs clang-tidy (the repo's .clang-tidy) over our sources, using build/release's compile database.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/release/compile_commands.json ] || tools/build.sh release
files=${*:-$(git ls-files 'src/*.cc' 'tools/*.cc')}
clang-tidy -p build/release --quiet $files
