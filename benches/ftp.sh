#!/usr/bin/env bash
# FTP throughput on loopback: `serve --handler ftp` downloading with and
# without hashing, uploading, against md5sum's rate on the same file, and
# pyftpdlib (a server without hashing) side by side when it is installed.
#
#   benches/ftp.sh              # a 1 GiB file, 5 rounds, the best of each
#   benches/ftp.sh 256 3        # a 256 MiB file, 3 rounds
#
# Each figure is the median of the rounds and the best one (the machine is
# shared: the best is the least disturbed), in MB/s (10^6 bytes a second,
# as curl counts). The served folder is on /dev/shm (tmpfs), so the
# disk does not set the upload's pace (fsync is free there); the file is in
# memory for every reader alike. Loopback only; every server is stopped by
# its PID. docs/benchmarks.md has the results and how to read them.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=${1:-1024}
rounds=${2:-5}
cargo build --release --quiet --bin serve
serve=target/release/serve

work=$(mktemp -d /dev/shm/ftp-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/root" "$work/py"
head -c "$((size_mib << 20))" /dev/urandom >"$work/big.bin"
bytes=$(stat -c %s "$work/big.bin")
cp "$work/big.bin" "$work/root/big.bin"
cp "$work/big.bin" "$work/py/big.bin"

# Rate in MB/s of a command that processes the whole file.
timed() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    echo "$bytes $start $end" | awk '{ printf "%.0f\n", $1 / ($3 - $2) / 1e6 }'
}
# "median best" of numbers, one a line.
stats() { sort -n | awk '{ v[NR] = $1 } END { printf "%d %d\n", v[int((NR + 1) / 2)], v[NR] }'; }
# "median (best)", and their percentages of md5sum's.
show() {
    local label=$1 median=$2 top=$3 ratio=${4:-}
    if [ -n "$ratio" ]; then
        printf '%-40s %5d (best %5d)   %3.0f%% (best %3.0f%%) of md5sum\n' "$label" "$median" "$top" \
            "$(awk "BEGIN { print 100 * $median / $md5_median }")" "$(awk "BEGIN { print 100 * $top / $md5_best }")"
    else
        printf '%-40s %5d (best %5d)\n' "$label" "$median" "$top"
    fi
}

# Starts `serve --handler ftp` with extra flags; sets $port.
start_serve() {
    local fifo="$work/first-line"
    rm -f "$fifo"
    mkfifo "$fifo"
    "$serve" --handler ftp --bind 127.0.0.1:0 --root "$work/root" \
        --user bench:bench --quiet "$@" >"$fifo" &
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
get() { # URL -> MB/s
    curl -s --max-time 120 -o /dev/null -w '%{speed_download}\n' "$1" | awk '{ printf "%.0f\n", $1 / 1e6 }'
}
put() { # URL -> MB/s
    curl -s --max-time 120 -T "$work/big.bin" -w '%{speed_upload}\n' "$1" | awk '{ printf "%.0f\n", $1 / 1e6 }'
}

# Rounds of `put` to a fresh name each time, the upload removed after each.
puts() {
    for i in $(seq "$rounds"); do
        put "$1/up$i.bin"
        rm -f "$work/$2/up$i.bin"
    done
}

echo "file: $bytes bytes, $rounds rounds; MB/s, median (best)"
read -r md5_median md5_best < <(for _ in $(seq "$rounds"); do timed md5sum "$work/big.bin"; done | stats)
show "md5sum (reading the file, hashing it)" "$md5_median" "$md5_best"

start_serve --hash-transfers always
url="ftp://bench:bench@127.0.0.1:$port"
show "RETR, hashed (always)" $(for _ in $(seq "$rounds"); do get "$url/big.bin"; done | stats) ratio
show "STOR, hashed" $(puts "$url" root | stats) ratio
stop_last

start_serve --hash-transfers auto
url="ftp://bench:bench@127.0.0.1:$port"
get "$url/big.bin" >/dev/null # hashed once: its MD5 is cached from now on
show "RETR, MD5 cached (auto): sendfile" $(for _ in $(seq "$rounds"); do get "$url/big.bin"; done | stats)
stop_last

start_serve --hash-transfers off
url="ftp://bench:bench@127.0.0.1:$port"
show "STOR, not hashed (off)" $(puts "$url" root | stats)
stop_last

if python3 -c 'import pyftpdlib' 2>/dev/null; then
    log="$work/pyftpdlib.log"
    python3 -m pyftpdlib -i 127.0.0.1 -p 0 -w -d "$work/py" -u bench -P bench 2>"$log" &
    pids+=($!)
    for _ in $(seq 100); do
        grep -q 'starting FTP server on' "$log" && break
        sleep 0.1
    done
    port=$(sed -n 's/.*starting FTP server on 127.0.0.1:\([0-9]*\).*/\1/p' "$log")
    url="ftp://bench:bench@127.0.0.1:$port"
    show "pyftpdlib RETR (sendfile, no hash)" $(for _ in $(seq "$rounds"); do get "$url/big.bin"; done | stats)
    show "pyftpdlib STOR (no hash)" $(puts "$url" py | stats)
    stop_last
fi
