#!/usr/bin/env bash
# Prints the directory cargo builds this workspace into: target/ at its
# root, unless CARGO_TARGET_DIR, CARGO_BUILD_TARGET_DIR or a Cargo config's
# build.target-dir puts it elsewhere. cargo metadata applies those rules
# itself, so every script that picks up what cargo built (the image's
# static binaries, the CI's hsm-cli) finds it where cargo put it.
#
#   deploy/target-dir.sh          e.g. /home/me/hsm-emulator/target
set -euo pipefail
cd "$(dirname "$0")/.."

cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
