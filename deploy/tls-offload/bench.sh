#!/usr/bin/env bash
# Full TLS handshakes per second through one nginx that serves the same
# page with keys on disk and with keys on the HSM (through libp11's engine
# and the emulator's PKCS#11 library): RSA-2048 and EC P-256, TLS 1.2 and
# TLS 1.3. A benchmark, not a test: it prints figures and checks nothing
# about them. docs/tls-offload.md has the figures of one run and the method.
#
#   deploy/tls-offload/bench.sh BIN_DIR [WORK_DIR]
#
# BIN_DIR holds release builds of hsm-daemon, hsm-cli and libhsm_pkcs11.so
# (`cargo build --release -p hsm-daemon -p hsm-client -p hsm-pkcs11`
# leaves them in "$(deploy/target-dir.sh)/release").
# Settings (environment): DURATION seconds per measurement (default 10),
# CLIENTS concurrent `openssl s_time` clients (default 4), WORKERS nginx
# workers (default 2), KEY_TYPES (default "ec rsa"), PORT_BASE (default
# 9443; four ports from it).
#
# Method: `openssl s_time -new` opens a connection, completes a full
# handshake (no session resumption) and closes, again and again for
# DURATION seconds; CLIENTS of them run at once against one server block,
# and the figure is all their connections over the wall-clock time of the
# run. Each HSM handshake is one signature by the HSM (ECDSA, or RSA-PSS);
# the clients, nginx and the emulator share the machine's cores.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
setup "$@"
duration="${DURATION:-10}"
clients="${CLIENTS:-4}"
workers="${WORKERS:-2}"
key_types="${KEY_TYPES:-ec rsa}"
port_base="${PORT_BASE:-9443}"

step "Machine"
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average" \
    "$(cut -d' ' -f1-3 /proc/loadavg); $(openssl version); $(nginx -v 2>&1)"

step "The emulator, a crypto user, keys on the HSM and on disk, certificates"
start_emulator >/dev/null
create_crypto_user >/dev/null
configure_engine
declare -A port
next_port="$port_base"
servers=
for kt in $key_types; do
    generate_hsm_key "$kt"
    self_signed "hsm-$kt" -engine pkcs11 -keyform engine -key "pkcs11:object=tls-$kt;type=private" 2>/dev/null
    # On disk, without the engine (with it loaded, OpenSSL 3.0's `req`
    # refuses a key file: "default_check: command not supported").
    case "$kt" in
        ec) openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/disk-$kt.key" ;;
        rsa) openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/disk-$kt.key" ;;
    esac
    OPENSSL_CONF=/dev/null self_signed "disk-$kt" -key "$work/disk-$kt.key"
    for where in disk hsm; do
        port["$where-$kt"]="$next_port"
        next_port=$((next_port + 1))
    done
    servers+="$(server_block "disk-$kt" "${port[disk-$kt]}" "$work/disk-$kt.key")
$(server_block "hsm-$kt" "${port[hsm-$kt]}" "engine:pkcs11:pkcs11:object=tls-$kt;type=private")
"
done
write_nginx_conf "$workers" <<<"$servers"
start_nginx "${port[@]}"

# Handshakes per second against NAME (its port and certificate) with TLS
# VERSION, or "failed" (with the reason) when a handshake does not complete.
measure() {
    local name="$1" version="$2" out start end c
    local args=(-connect "127.0.0.1:${port[$name]}" -CAfile "$work/$name.crt" "-tls${version/./_}")
    out="$work/s_time-$name-$version"
    if ! OPENSSL_CONF=/dev/null curl -q --silent --show-error --fail --noproxy '*' --max-time 30 \
        --cacert "$work/$name.crt" --resolve "localhost:${port[$name]}:127.0.0.1" --tlsv"$version" \
        --tls-max "$version" -o /dev/null "https://localhost:${port[$name]}/" 2>"$out.err"; then
        echo "failed ($(tr '\n' ' ' <"$out.err"))"
        return
    fi
    start=$(date +%s.%N)
    for c in $(seq "$clients"); do
        OPENSSL_CONF=/dev/null timeout $((duration + 60)) openssl s_time "${args[@]}" -new -time "$duration" \
            >"$out.$c" 2>&1 &
    done
    wait
    end=$(date +%s.%N)
    # s_time's "N connections in T real seconds" lines, summed, over the
    # wall-clock time of the run.
    cat "$out".[0-9]* | awk -v start="$start" -v end="$end" \
        '/connections in [0-9]+ real seconds/ { n += $1 } END { printf "%.0f", n / (end - start) }'
}

step "Full handshakes per second: $clients clients, $duration s each, nginx with $workers workers"
echo "| key | TLS | key on disk | key on the HSM | HSM / disk |"
echo "|---|---|---:|---:|---:|"
for kt in $key_types; do
    for version in 1.2 1.3; do
        disk="$(measure "disk-$kt" "$version")"
        hsm="$(measure "hsm-$kt" "$version")"
        ratio="$(awk -v d="$disk" -v h="$hsm" 'BEGIN { if (d + 0 > 0 && h + 0 > 0) printf "%.2f", h / d; else print "-" }')"
        name="$([ "$kt" = ec ] && echo "EC P-256" || echo "RSA-2048")"
        echo "| $name | $version | $disk | $hsm | $ratio |"
    done
done
