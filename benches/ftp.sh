#!/usr/bin/env bash
# FTP throughput on loopback: `serve --handler ftp` downloading with and
# without hashing, uploading, side by side with pyftpdlib and vsftpd (when
# installed: benches/run installs both), against two limits: md5sum's
# rate on the same file (what a hashed transfer can reach) and a raw
# loopback copy (sendfile to a socket, read out by another: what any FTP
# transfer can reach).
#
#   benches/ftp.sh              # a 1 GiB file, 5 rounds
#   benches/ftp.sh 256 3        # a 256 MiB file, 3 rounds
#   FTP_BENCH_SMOKE=1 benches/ftp.sh 1 1   # every transfer checked by MD5
#
# FTP_BENCH_JSON=FILE writes every round's figure there (benches/run makes
# docs/benchmarks.md from it); FTP_BENCH_SERVE=PATH uses that serve binary
# instead of building one in release mode.
#
# Each figure is the median of the rounds and the best one (the machine is
# shared: the best is the least disturbed), in MB/s (10^6 bytes a second,
# as curl counts). The served folders are on /dev/shm (tmpfs), so the disk
# does not set the upload's pace (fsync is free there); the file is in
# memory for every reader alike. Every transfer's size is checked, and in
# the smoke run its MD5 too. Loopback only; every server is stopped by its
# PID. docs/benchmarks.md has the results and how to read them.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=${1:-1024}
rounds=${2:-5}
smoke=${FTP_BENCH_SMOKE:-0}
if [ -n "${FTP_BENCH_SERVE:-}" ]; then
    serve=$FTP_BENCH_SERVE
else
    cargo build --release --quiet --bin serve
    serve=target/release/serve
fi

work=$(mktemp -d /dev/shm/ftp-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/root" "$work/py" "$work/vs/up"
head -c "$((size_mib << 20))" /dev/urandom >"$work/big.bin"
bytes=$(stat -c %s "$work/big.bin")
md5=$(md5sum "$work/big.bin" | cut -d' ' -f1)
for dir in root py vs; do cp "$work/big.bin" "$work/$dir/big.bin"; done
chmod 644 "$work"/*/big.bin
# Every round's figure, one row a line: ID|LABEL|MB/s MB/s ...
rows="$work/rows"
: >"$rows"
failures=0

fail() {
    echo "ftp bench: FAILED: $*" >&2
    failures=$((failures + 1))
}
# Rate in MB/s of a command that processes the whole file.
timed() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    echo "$bytes $start $end" | awk '{ printf "%.0f\n", $1 / ($3 - $2) / 1e6 }'
}
# Records a row from figures on stdin (one a line) and prints
# "median (best)", with its percentage of md5sum's when asked.
row() {
    local id=$1 label=$2 ratio=${3:-} values median top
    values=$(sort -n | tr '\n' ' ')
    echo "$id|$label|$values" >>"$rows"
    read -r median top < <(echo "$values" | tr ' ' '\n' | grep . |
        awk '{ v[NR] = $1 } END { printf "%d %d\n", v[int((NR + 1) / 2)], v[NR] }')
    if [ -n "$ratio" ]; then
        # A pipeline's last command runs in a subshell: md5sum's figures
        # come back from its row, not a variable.
        local md5_median md5_best
        read -r md5_median md5_best < <(grep '^md5sum|' "$rows" | cut -d'|' -f3 | tr ' ' '\n' | grep . |
            awk '{ v[NR] = $1 } END { printf "%d %d\n", v[int((NR + 1) / 2)], v[NR] }')
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
# A free loopback port (for vsftpd, which takes no port 0).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# RETR: URL -> MB/s; checks the size, and in the smoke run the MD5.
get() {
    local out=/dev/null
    [ "$smoke" = 1 ] && out="$work/got.bin"
    local result size speed
    result=$(curl -s --max-time 300 -o "$out" -w '%{size_download} %{speed_download}\n' "$1") ||
        { fail "curl $1: exit $?"; echo 0; return; }
    read -r size speed <<<"$result"
    [ "$size" = "$bytes" ] || fail "RETR $1: $size bytes, not $bytes"
    if [ "$smoke" = 1 ]; then
        [ "$(md5sum <"$out" | cut -d' ' -f1)" = "$md5" ] || fail "RETR $1: wrong MD5"
        rm -f "$out"
    fi
    echo "$speed" | awk '{ printf "%.0f\n", $1 / 1e6 }'
}
# STOR: URL, the stored file's path -> MB/s; checks the stored size, and
# in the smoke run its MD5; removes it.
put() {
    local result size speed
    result=$(curl -s --max-time 300 -T "$work/big.bin" -w '%{size_upload} %{speed_upload}\n' "$1") ||
        { fail "curl -T $1: exit $?"; echo 0; return; }
    read -r size speed <<<"$result"
    [ "$(stat -c %s "$2" 2>/dev/null)" = "$bytes" ] || fail "STOR $1: stored file has the wrong size"
    if [ "$smoke" = 1 ]; then
        [ "$(md5sum <"$2" | cut -d' ' -f1)" = "$md5" ] || fail "STOR $1: wrong MD5"
    fi
    rm -f "$2"
    echo "$speed" | awk '{ printf "%.0f\n", $1 / 1e6 }'
}
gets() { for _ in $(seq "$rounds"); do get "$1"; done; }
# Rounds of `put` to a fresh name each time: URL of the folder, local folder.
puts() { for i in $(seq "$rounds"); do put "$1/up$i.bin" "$2/up$i.bin"; done; }

# The raw loopback copy: sendfile(2) of the file into a TCP socket by one
# process, read out in 256 KiB reads by another (two processes, as a
# server and curl are: two threads of one Python process would share its
# interpreter lock); no protocol, no hash, no disk.
raw_copy() {
    python3 - "$work/big.bin" <<'PY'
import os, socket, sys, time
path = sys.argv[1]
listener = socket.create_server(("127.0.0.1", 0))
addr = listener.getsockname()
sender = os.fork()
if sender == 0:
    conn, _ = listener.accept()
    with conn, open(path, "rb") as f:
        conn.sendfile(f)
    os._exit(0)
listener.close()
client = socket.create_connection(addr, timeout=60)
buf = bytearray(256 << 10)
total, start = 0, time.perf_counter()
while n := client.recv_into(buf):
    total += n
elapsed = time.perf_counter() - start
os.waitpid(sender, 0)
if total != os.path.getsize(path):
    sys.exit(f"raw copy: {total} bytes, not {os.path.getsize(path)}")
print(round(total / elapsed / 1e6))
PY
}

echo "file: $bytes bytes, $rounds rounds; MB/s, median (best)"
for _ in $(seq "$rounds"); do timed md5sum "$work/big.bin"; done | row md5sum "md5sum (reading the file, hashing it)"
for _ in $(seq "$rounds"); do raw_copy || { fail "raw copy"; echo 0; }; done | row raw "raw loopback copy (sendfile, recv)"

start_serve --hash-transfers always
url="ftp://bench:bench@127.0.0.1:$port"
gets "$url/big.bin" | row ours_retr_hashed "RETR, hashed (always)" ratio
puts "$url" "$work/root" | row ours_stor_hashed "STOR, hashed" ratio
stop_last

start_serve --hash-transfers auto
url="ftp://bench:bench@127.0.0.1:$port"
get "$url/big.bin" >/dev/null # hashed once: its MD5 is cached from now on
gets "$url/big.bin" | row ours_retr_cached "RETR, MD5 cached (auto): sendfile"
stop_last

start_serve --hash-transfers off
url="ftp://bench:bench@127.0.0.1:$port"
gets "$url/big.bin" | row ours_retr_off "RETR, not hashed (off): sendfile"
puts "$url" "$work/root" | row ours_stor_off "STOR, not hashed (off)"
stop_last

# The event model, one loop: the same transfers as the threading model's
# (serve's default) above, which the report compares them with.
start_serve --hash-transfers always --mode event --threads 1
url="ftp://bench:bench@127.0.0.1:$port"
gets "$url/big.bin" | row ours_event_retr_hashed "RETR, hashed (always), event model" ratio
puts "$url" "$work/root" | row ours_event_stor_hashed "STOR, hashed, event model" ratio
stop_last

start_serve --hash-transfers off --mode event --threads 1
url="ftp://bench:bench@127.0.0.1:$port"
gets "$url/big.bin" | row ours_event_retr_off "RETR, not hashed (off), event model"
puts "$url" "$work/root" | row ours_event_stor_off "STOR, not hashed (off), event model"
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
    gets "$url/big.bin" | row pyftpdlib_retr "pyftpdlib RETR (sendfile, no hash)"
    puts "$url" "$work/py" | row pyftpdlib_stor "pyftpdlib STOR (no hash)"
    stop_last
else
    echo "pyftpdlib not installed: its rows stay empty"
fi

vsftpd=$(command -v vsftpd || ls /usr/sbin/vsftpd 2>/dev/null || true)
if [ -n "$vsftpd" ]; then
    # Anonymous, on a loopback port, in the foreground (stopped by its
    # PID), with uploads into up/ (vsftpd refuses a writable anonymous
    # root). Its own config file: the system's /etc/vsftpd.conf is unused.
    port=$(free_port)
    chown ftp "$work/vs/up" 2>/dev/null || chmod 777 "$work/vs/up"
    cat >"$work/vsftpd.conf" <<CONF
listen=YES
listen_ipv6=NO
background=NO
listen_address=127.0.0.1
listen_port=$port
anonymous_enable=YES
no_anon_password=YES
anon_root=$work/vs
local_enable=NO
write_enable=YES
anon_upload_enable=YES
anon_umask=022
seccomp_sandbox=NO
xferlog_enable=NO
use_sendfile=YES
secure_chroot_dir=/var/run/vsftpd/empty
CONF
    mkdir -p /var/run/vsftpd/empty 2>/dev/null || true
    "$vsftpd" "$work/vsftpd.conf" &
    pids+=($!)
    for _ in $(seq 50); do
        curl -s --max-time 2 -o /dev/null "ftp://127.0.0.1:$port/" && break
        sleep 0.1
    done
    url="ftp://127.0.0.1:$port"
    gets "$url/big.bin" | row vsftpd_retr "vsftpd RETR (sendfile, no hash)"
    puts "$url/up" "$work/vs/up" | row vsftpd_stor "vsftpd STOR (no hash)"
    stop_last
else
    echo "vsftpd not installed: its rows stay empty"
fi

if [ -n "${FTP_BENCH_JSON:-}" ]; then
    python3 - "$rows" "$bytes" "$rounds" "$smoke" "$failures" >"$FTP_BENCH_JSON" <<'PY'
import json, sys
rows, size, rounds, smoke, failures = sys.argv[1:]
out = {"size_bytes": int(size), "rounds": int(rounds), "smoke": smoke == "1",
       "failures": int(failures), "rows": []}
for line in open(rows):
    id_, label, values = line.rstrip("\n").split("|")
    out["rows"].append({"id": id_, "label": label, "mb_per_s": [int(v) for v in values.split()]})
json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
print()
PY
fi
if [ "$failures" -gt 0 ]; then
    echo "ftp: $failures transfers FAILED"
    exit 1
fi
echo "ftp: every transfer complete and checked"
