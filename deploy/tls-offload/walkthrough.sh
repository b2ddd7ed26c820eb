#!/usr/bin/env bash
# SSL/TLS offload with the emulator, as AWS's guide "SSL/TLS offload on Linux
# using NGINX or Apache with OpenSSL" does it with CloudHSM: nginx terminates
# TLS with its private key on the HSM, reached through libp11's OpenSSL
# engine and the emulator's PKCS#11 library. docs/tls-offload.md walks
# through these steps; hsm-pkcs11/tests/walkthrough.rs runs this script.
#
#   deploy/tls-offload/walkthrough.sh BIN_DIR [WORK_DIR]
#
# BIN_DIR holds hsm-daemon, hsm-cli and libhsm_pkcs11.so (`cargo build
# --release` leaves them in release/ under cargo's target directory, which
# deploy/target-dir.sh prints; HSM_PKCS11_MODULE names the library
# elsewhere). WORK_DIR (default: a new temporary directory) receives
# the emulator's state, the certificates, nginx's configuration and logs.
# KEY_TYPES (default "ec rsa") chooses the keys, each served on its own port:
# PORT_EC (default 8443) and PORT_RSA (default 8444).
#
# Needs openssl, libp11's engine (Debian: libengine-pkcs11-openssl), nginx,
# curl and setsid (util-linux). Everything it starts is stopped when it ends.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
setup "$@"
key_types="${KEY_TYPES:-ec rsa}"
declare -A port=([ec]="${PORT_EC:-8443}" [rsa]="${PORT_RSA:-8444}")

step "1. Start the emulator: a cluster of two HSMs (AWS's guide asks for two), state in $work/hsm"
start_emulator
cat "$work/hsm-daemon.log"

step "2. Activate the cluster and create the crypto user (CU) that owns the web server's keys"
create_crypto_user

step "3. Generate the key pairs on the HSM: the private keys sign and are not extractable"
for kt in $key_types; do
    generate_hsm_key "$kt"
done

step "4. Configure OpenSSL to load libp11's engine with the emulator's library and the CU's PIN"
configure_engine
openssl engine -t pkcs11

step "5. Make a self-signed certificate for each key: openssl signs it on the HSM"
for kt in $key_types; do
    self_signed "tls-$kt" -engine pkcs11 -keyform engine -key "pkcs11:object=tls-$kt;type=private"
done

step "6. Configure nginx: a master and two pre-forked workers, the keys through the engine"
for kt in $key_types; do
    server_block "tls-$kt" "${port[$kt]}" "engine:pkcs11:pkcs11:object=tls-$kt;type=private"
done | write_nginx_conf 2
cat "$work/nginx/nginx.conf"

step "7. Start nginx"
ports=()
for kt in $key_types; do ports+=("${port[$kt]}"); done
start_nginx "${ports[@]}"

step "8. Connect with curl: TLS 1.2 and TLS 1.3, checked against the certificate"
for kt in $key_types; do
    for version in 1.2 1.3; do
        curl -q --silent --show-error --fail --noproxy '*' --max-time 30 --cacert "$work/tls-$kt.crt" \
            --resolve "localhost:${port[$kt]}:127.0.0.1" --tlsv"$version" --tls-max "$version" \
            "https://localhost:${port[$kt]}/"
    done
done

step "Done: nginx served TLS with keys that stay on the HSM ($work)"
