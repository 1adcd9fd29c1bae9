#!/usr/bin/env bash
# FTPS throughput on loopback: explicit FTPS (AUTH TLS, PROT P) with curl
# `--ssl-reqd`, `serve --handler ftp` against pyftpdlib's TLS_FTPHandler
# (TLS through pyOpenSSL: `python3 -m pip install pyftpdlib pyOpenSSL`) in
# the same run, and the same transfers in clear for scale.
#
#   benches/ftps.sh              # a 1 GiB file, 5 rounds
#   benches/ftps.sh 256 3        # a 256 MiB file, 3 rounds
#
# Figures in MB/s (10^6 bytes a second, as curl counts): the median of the
# rounds and the best one. The folders are on /dev/shm, so no disk sets
# the pace. A throwaway certificate (openssl, EC P-256, one day) is made in
# the work folder and removed with it. Loopback only; every server is
# stopped by its PID. docs/benchmarks.md has the results.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=${1:-1024}
rounds=${2:-5}
cargo build --release --quiet --bin serve
serve=target/release/serve

work=$(mktemp -d /dev/shm/ftps-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/root" "$work/py"
head -c "$((size_mib << 20))" /dev/urandom >"$work/big.bin"
cp "$work/big.bin" "$work/root/big.bin"
cp "$work/big.bin" "$work/py/big.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -addext basicConstraints=critical,CA:FALSE \
    -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

stats() { sort -n | awk '{ v[NR] = $1 } END { printf "%d %d\n", v[int((NR + 1) / 2)], v[NR] }'; }
show() { printf '%-44s %5d (best %5d)\n' "$1" "$2" "$3"; }

tls=(--ssl-reqd --cacert "$work/cert.pem")
get() { # URL [curl flags] -> MB/s
    local url=$1
    shift
    curl -s --max-time 300 "$@" -o /dev/null -w '%{speed_download}\n' "$url" |
        awk '{ printf "%.0f\n", $1 / 1e6 }'
}
put() { # URL [curl flags] -> MB/s
    local url=$1
    shift
    curl -s --max-time 300 "$@" -T "$work/big.bin" -w '%{speed_upload}\n' "$url" |
        awk '{ printf "%.0f\n", $1 / 1e6 }'
}
gets() { local url=$1; shift; for _ in $(seq "$rounds"); do get "$url/big.bin" "$@"; done | stats; }
puts() { # URL FOLDER [curl flags]: a fresh name each round, removed after
    local url=$1 folder=$2
    shift 2
    for i in $(seq "$rounds"); do
        put "$url/up$i.bin" "$@"
        rm -f "$work/$folder/up$i.bin"
    done | stats
}

start_serve() { # flags -> $port
    local fifo="$work/first-line"
    rm -f "$fifo"
    mkfifo "$fifo"
    "$serve" --handler ftp --bind 127.0.0.1:0 --root "$work/root" --user bench:bench \
        --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" --quiet "$@" >"$fifo" &
    pids+=($!)
    local line
    read -r -t 10 line <"$fifo"
    port=${line##*:}
    port=${port%% *}
}
stop_last() {
    local pid=${pids[-1]}
    kill "$pid" && wait "$pid" 2>/dev/null || true
    unset 'pids[-1]'
}

echo "file: $((size_mib)) MiB, $rounds rounds; MB/s, median (best)"
cpus=$(nproc)
echo "openssl speed (one core, AES-128-GCM, 16 KiB blocks), for scale:"
openssl speed -elapsed -seconds 1 -bytes 16384 -evp aes-128-gcm 2>/dev/null | tail -1

# Hashing off on both sides, so the figures are TLS's cost alone (the
# server's MD5 runs on another core anyway: benches/ftp.sh).
start_serve --hash-transfers off
url="ftp://bench:bench@127.0.0.1:$port"
show "serve RETR, clear (sendfile)" $(gets "$url")
show "serve RETR, FTPS (PROT P)" $(gets "$url" "${tls[@]}")
show "serve STOR, clear" $(puts "$url" root)
show "serve STOR, FTPS (PROT P)" $(puts "$url" root "${tls[@]}")
stop_last

cat >"$work/pyftpd.py" <<'PY'
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.servers import FTPServer
root, cert, key = sys.argv[1:4]
auth = DummyAuthorizer()
auth.add_user("bench", "bench", root, perm="elradfmwMT")
TLS_FTPHandler.certfile = cert
TLS_FTPHandler.keyfile = key
TLS_FTPHandler.authorizer = auth
server = FTPServer(("127.0.0.1", 0), TLS_FTPHandler)
print(server.address[1], flush=True)
server.serve_forever()
PY
fifo="$work/py-port"
mkfifo "$fifo"
python3 "$work/pyftpd.py" "$work/py" "$work/cert.pem" "$work/key.pem" >"$fifo" 2>/dev/null &
pids+=($!)
read -r -t 10 port <"$fifo"
url="ftp://bench:bench@127.0.0.1:$port"
show "pyftpdlib RETR, clear (sendfile)" $(gets "$url")
show "pyftpdlib RETR, FTPS (pyOpenSSL)" $(gets "$url" "${tls[@]}")
show "pyftpdlib STOR, clear" $(puts "$url" py)
show "pyftpdlib STOR, FTPS (pyOpenSSL)" $(puts "$url" py "${tls[@]}")
stop_last
echo "($cpus CPUs; curl $(curl --version | head -1 | cut -d' ' -f2))"
