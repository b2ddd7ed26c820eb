#!/usr/bin/env bash
# The SoftHSM side of docs/performance.md's comparison: the same
# mechanisms hsm-bench measures, called in-process through SoftHSM's PKCS#11
# library by one thread, with no network. Installs SoftHSM and the PKCS#11
# header from Debian's packages when they are missing (needs root), builds
# softhsm-bench.c with gcc and runs it on a throwaway token.
#
#   hsm-bench/softhsm/run.sh [SECONDS_PER_MECHANISM]   (default 2)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
if [[ ! -e /usr/lib/softhsm/libsofthsm2.so || ! -e /usr/include/p11-kit-1/p11-kit/pkcs11.h ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 libp11-kit-dev >/dev/null
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$work" >"$work/softhsm2.conf"
export SOFTHSM2_CONF="$work/softhsm2.conf"
softhsm2-util --init-token --free --label hsm-bench --pin 1234 --so-pin 5678 >/dev/null
gcc -O2 -Wall -I/usr/include/p11-kit-1 "$here/softhsm-bench.c" -o "$work/softhsm-bench" -ldl
echo "SoftHSM $(softhsm2-util --version), one thread, in-process:"
"$work/softhsm-bench" "${1:-2}"
