# Shared by walkthrough.sh and bench.sh (sourced, not run): the emulator, the
# crypto user, keys on the HSM, libp11's engine configuration and nginx, each
# one function, and a trap that stops whatever was started.
#
# The caller runs `setup "$@"` first.

# The cluster's first admin password and the web server's crypto user.
admin_password=admin-pass
cu_name=nginx_cu
cu_password=nginx-cu-pass

daemon_pid=
nginx_pid=

# Reads the arguments BIN_DIR [WORK_DIR] into bin (hsm-daemon, hsm-cli),
# module (libhsm_pkcs11.so, or HSM_PKCS11_MODULE) and work (state,
# certificates, configuration and logs; a new temporary directory by
# default); fails unless the binaries, the tools and libp11's engine are
# there, and sets engine to the engine's path; stops everything it starts
# on exit.
setup() {
    local file tool
    [ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 BIN_DIR [WORK_DIR]" >&2; exit 2; }
    bin="$(cd "$1" && pwd)"
    module="${HSM_PKCS11_MODULE:-$bin/libhsm_pkcs11.so}"
    work="${2:-$(mktemp -d)}"
    mkdir -p "$work"
    work="$(cd "$work" && pwd)"
    for file in "$bin/hsm-daemon" "$bin/hsm-cli" "$module"; do
        [ -e "$file" ] || { echo "$0: $file is missing: build it (cargo build --release -p hsm-daemon -p hsm-client -p hsm-pkcs11)" >&2; exit 2; }
    done
    for tool in openssl nginx curl setsid; do
        command -v "$tool" >/dev/null || { echo "$0: $tool is not installed" >&2; exit 2; }
    done
    engine="$(openssl version -e | sed -E 's/^[^"]*"([^"]*)".*/\1/')/pkcs11.so"
    [ -e "$engine" ] || { echo "$0: $engine is missing: apt-get install libengine-pkcs11-openssl" >&2; exit 2; }
    trap stop_all EXIT
    trap 'exit 1' INT TERM
}

step() { printf '\n== %s\n' "$*"; }

# Waits up to 60 s for a command to succeed.
wait_for() {
    local what="$1"
    shift
    for _ in $(seq 600); do
        "$@" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$0: $what did not happen within 60 s" >&2
    return 1
}

# Stops nginx (its session: master and workers; a worker stuck in a call is
# killed after 10 s) and the emulator.
stop_all() {
    if [ -n "$nginx_pid" ]; then
        kill -TERM -- "-$nginx_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$nginx_pid" 2>/dev/null || true
    fi
    if [ -n "$daemon_pid" ]; then
        kill -INT "$daemon_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
}

# `hsm-daemon dev` with a fresh cluster of two HSMs in $work/hsm, in the
# background; loads its client.env into the environment.
start_emulator() {
    rm -rf "$work/hsm"
    "$bin/hsm-daemon" dev --dir "$work/hsm" --hsms 2 >"$work/hsm-daemon.log" 2>&1 &
    daemon_pid=$!
    # client.env appears once the HSMs serve.
    wait_for "hsm-daemon dev writing client.env" test -s "$work/hsm/client.env"
    # The library in nginx's workers reads client.env and the cluster CA;
    # when nginx starts as root its workers run as an unprivileged user, so
    # the directories on the way must let them through (the cluster's
    # secrets in $work/hsm stay 0600).
    chmod 755 "$work"
    set -a
    . "$work/hsm/client.env"
    set +a
    export HSM_PKCS11_CONFIG="$work/hsm/client.env"
}

cli() { "$bin/hsm-cli" "$@"; }

# Activates the cluster, creates the crypto user and logs hsm-cli in as it.
create_crypto_user() {
    cli cluster activate --password "$admin_password"
    CLOUDHSM_ROLE=admin CLOUDHSM_PIN="admin:$admin_password" \
        cli user create --username "$cu_name" --role crypto-user --password "$cu_password"
    export CLOUDHSM_ROLE=crypto-user CLOUDHSM_PIN="$cu_name:$cu_password"
}

# Generates the pair tls-KT (private) and tls-KT-pub on the HSM, KT being ec
# (P-256) or rsa (2048 bits); the private key signs and is not extractable.
generate_hsm_key() {
    local kt="$1" spec listed
    case "$kt" in
        ec) spec=(ec --curve prime256v1) ;;
        rsa) spec=(rsa --modulus-size-bits 2048 --public-exponent 65537) ;;
        *) echo "$0: unknown key type $kt (ec or rsa)" >&2; exit 2 ;;
    esac
    cli key generate-asymmetric-pair "${spec[@]}" --public-label "tls-$kt-pub" --private-label "tls-$kt" \
        --public-attributes verify=true --private-attributes sign=true extractable=false >"$work/tls-$kt.key.json"
    listed="$(cli key list --filter "attr.label=tls-$kt" attr.class=private-key --verbose)"
    grep -q '"extractable": false' <<<"$listed" || { echo "$listed" >&2; echo "$0: tls-$kt is extractable" >&2; exit 1; }
    echo "tls-$kt: $(grep -o '"key-reference": "[^"]*"' <<<"$listed"), extractable false"
}

# Writes $work/openssl-pkcs11.cnf, which loads libp11's engine with the
# library and the crypto user's PIN (so it is readable by its owner only),
# and points OPENSSL_CONF at it.
configure_engine() {
    (
        umask 077
        cat >"$work/openssl-pkcs11.cnf" <<EOF
openssl_conf = openssl_init

[openssl_init]
engines = engine_section

[engine_section]
pkcs11 = pkcs11_section

[pkcs11_section]
engine_id = pkcs11
dynamic_path = $engine
MODULE_PATH = $module
PIN = $cu_name:$cu_password
init = 0
EOF
    )
    export OPENSSL_CONF="$work/openssl-pkcs11.cnf"
}

# A self-signed certificate for localhost, $work/NAME.crt, whose key is
# KEY_ARGS (`-engine pkcs11 -keyform engine -key URI`, or `-key FILE`).
self_signed() {
    local name="$1"
    shift
    openssl req -new -x509 "$@" -subj /CN=localhost -addext subjectAltName=DNS:localhost -days 365 \
        -out "$work/$name.crt"
    OPENSSL_CONF=/dev/null openssl verify -CAfile "$work/$name.crt" "$work/$name.crt"
}

# An nginx server block: NAME on 127.0.0.1:PORT with $work/NAME.crt and KEY
# (a file, or "engine:pkcs11:URI"); its page names itself, the worker and
# the protocol.
server_block() {
    local name="$1" port="$2" key="$3"
    cat <<EOF
    server {
        listen 127.0.0.1:$port ssl;
        server_name localhost;
        ssl_certificate $work/$name.crt;
        ssl_certificate_key "$key";
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            default_type text/plain;
            return 200 "$name served by worker \$pid over \$ssl_protocol (\$ssl_cipher)\\n";
        }
    }
EOF
}

# Writes $work/nginx/nginx.conf: a master and WORKERS pre-forked workers in
# the foreground, the engine, everything nginx writes in $work/nginx, and
# the server blocks given on standard input.
write_nginx_conf() {
    local workers="$1"
    mkdir -p "$work/nginx"
    cat >"$work/nginx/nginx.conf" <<EOF
master_process on;
worker_processes $workers;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log notice;
# nginx empties its workers' environment but for the variables named here.
env HSM_PKCS11_CONFIG;
ssl_engine pkcs11;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/client_body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
$(cat)
}
EOF
    nginx -t -q -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf"
}

# Starts nginx in a session of its own and waits until it listens on PORTS.
start_nginx() {
    local port
    setsid nginx -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" \
        >"$work/nginx/stdout.log" 2>&1 </dev/null &
    nginx_pid=$!
    for port in "$@"; do
        wait_for "nginx listening on $port" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
    done
}
