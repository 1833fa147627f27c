#!/usr/bin/env bash
# Throughput, memory and no-op-rerun benchmark of `trivy-mirror sync` (issue 8).
#
# Trivy-db-shaped artifacts are pushed with skopeo into a local CNCF distribution registry:
# layers of incompressible bytes (fixture generator `big-layer`; --sizes, default 100 MiB
# and 1 GiB) and a real tar.gz layer (scripts/bench/db-layer.py: a BoltDB-like trivy.db of
# --db-size bytes, default 768 MiB, i.e. a ~100 MiB layer, then metadata.json, in the
# order of upstream's db.tar.gz). Each is then copied, several times, by:
#
#   registry -> directory    trivy-mirror sync --to DIR          vs  skopeo copy docker:// dir:
#                            and vs itself with --range-parts 1 (one stream per blob, as before
#                            ranged downloads: loopback must be no slower with them)
#   registry -> registry     trivy-mirror sync --to oci://…      vs  skopeo copy docker:// docker://
#   registry -> S3 emulator  trivy-mirror sync --to s3://…       (s3s-fs, else moto; no skopeo route),
#                            also with AWS_UNSIGNED_PAYLOAD=true
#   registry -> bundle       trivy-mirror sync --to oci-archive:FILE  vs  skopeo copy docker:// oci-archive:
#   bundle -> dir            trivy-mirror sync --source oci-archive:FILE --to DIR  vs  tar -xf FILE
#   bundle -> trivy-cache    trivy-mirror sync --source oci-archive:FILE --to trivy-cache:DIR (tar.gz layer)
#                            vs  tar -xzf of the layer
#   floors                   sha256sum / openssl dgst -sha256 of the same blob file, curl GET of it,
#                            cp of it, gzip -dc of the tar.gz layer
#
# and a rerun where nothing changed (time and requests on the source and destination).
# Every destination is fresh for each repetition. The table gives the median wall time,
# throughput, the peak RSS (max over repetitions), CPU seconds of the tool and of the
# servers (source registry, destination registry or S3 emulator), the ratios
# to skopeo (same route) and to sha256sum, the requests seen by the servers and a noise
# figure: CPU used by *other* processes during the run, in % of the machine. A repetition
# with more than --max-noise % is discarded and run again (twice at most).
#
# Everything listens on 127.0.0.1, is stopped by PID on exit, and runs with a dead proxy
# so nothing can leave the machine. Temporary data lives in one mktemp directory, removed
# at exit (--keep keeps it). Progress goes to stderr, the report to stdout.
#
# Usage: scripts/bench.sh [--quick] [--reps N] [--sizes "100M 1G"] [--db-size 768M|0]
#                         [--s3 auto|s3s-fs|moto|none] [--max-noise PCT] [--quiet-wait SECONDS]
#                         [--no-build] [--keep]
#                         [--link-rate 16m] [--link-sizes "64M 512M"] [--no-link] [--no-serve]
#   --no-serve: skip scripts/bench-serve.sh (serve vs nginx with wrk, issue 25), run at the end.
#   --quick: 32 MiB and 128 MiB, a 64 MiB trivy.db, 3 repetitions, no waiting for quiet;
#            shaped link at 8 MiB/s per connection with a 16 MiB db and a 64 MiB java DB.
#   --link-*: the shaped link (see "shaped link" below): nginx's limit_rate per connection,
#            and the trivy-db and trivy-java-db layer sizes of the full set.
#
# Needs: cargo, docker-registry, skopeo, curl, /usr/bin/time (Debian package `time`),
# sha256sum, python3 (tar.gz layer); optional: openssl, an S3 emulator:
#   cargo install --locked s3s-fs@0.14.1 --features binary --root .tools/cargo
#   or moto via scripts/install-test-deps.sh (.tools/py/bin/moto_server)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

usage() { sed -n '/^# Usage:/,/^# Needs:/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

REPS=5
SIZES="100M 1G"
DB_SIZE=768M
S3_BACKEND=auto
MAX_NOISE=15
QUIET_WAIT=60
RETRIES=2
BUILD=1
KEEP=0
LINK=1
LINK_RATE=16m
LINK_SIZES="64M 512M"
SERVE=1
ARGS="$*"
while [ $# -gt 0 ]; do
  case $1 in
    --quick) REPS=3; SIZES="32M 128M"; DB_SIZE=64M; QUIET_WAIT=0; RETRIES=0; LINK_RATE=8m; LINK_SIZES="16M 64M" ;;
    --link-rate) LINK_RATE=$2; shift ;;
    --link-sizes) LINK_SIZES=$2; shift ;;
    --no-link) LINK=0 ;;
    --no-serve) SERVE=0 ;;
    --reps) REPS=$2; shift ;;
    --sizes) SIZES=$2; shift ;;
    --db-size) DB_SIZE=$2; shift ;;
    --s3) S3_BACKEND=$2; shift ;;
    --max-noise) MAX_NOISE=$2; shift ;;
    --quiet-wait) QUIET_WAIT=$2; shift ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
case $REPS in ''|*[!0-9]*|0) echo "--reps wants a positive integer" >&2; exit 2 ;; esac

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Sizes: 1073741824, 100M, 1G (binary units).
to_bytes() {
  local s=$1 n
  case $s in
    *[Gg]) n=${s%?}; echo $((n * 1024 * 1024 * 1024)) ;;
    *[Mm]) n=${s%?}; echo $((n * 1024 * 1024)) ;;
    *[Kk]) n=${s%?}; echo $((n * 1024)) ;;
    *[!0-9]*|'') die "bad size $s" ;;
    *) echo "$s" ;;
  esac
}
label_of() { # bytes -> 100 MiB / 1 GiB / 66.4 MiB
  awk -v b="$1" 'BEGIN{ if (b >= 1073741824 && b % 1073741824 == 0) printf "%d GiB", b/1073741824;
                        else if (b % 1048576 == 0) printf "%d MiB", b/1048576; else printf "%.1f MiB", b/1048576 }'
}

# ---------------------------------------------------------------- tools
TIME_NOTE=""
if [ ! -x /usr/bin/time ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing the Debian package 'time' (/usr/bin/time, for peak RSS)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
    TIME_NOTE=" (Debian package 'time' installed by this run)"
  else
    die "/usr/bin/time is missing: apt-get install time"
  fi
fi
for t in cargo docker-registry skopeo curl sha256sum awk; do
  command -v "$t" >/dev/null || die "$t is missing (scripts/install-test-deps.sh installs docker-registry and skopeo)"
done
HAVE_OPENSSL=0; command -v openssl >/dev/null && HAVE_OPENSSL=1

S3FS_BIN=$ROOT/.tools/cargo/bin/s3s-fs
MOTO_BIN=$ROOT/.tools/py/bin/moto_server
case $S3_BACKEND in
  auto) if [ -x "$S3FS_BIN" ]; then S3_BACKEND=s3s-fs; elif [ -x "$MOTO_BIN" ]; then S3_BACKEND=moto; else S3_BACKEND=none; fi ;;
  s3s-fs) [ -x "$S3FS_BIN" ] || die "no $S3FS_BIN: cargo install --locked s3s-fs@0.14.1 --features binary --root .tools/cargo" ;;
  moto) [ -x "$MOTO_BIN" ] || die "no $MOTO_BIN: run scripts/install-test-deps.sh" ;;
  none) ;;
  *) die "--s3 takes auto, s3s-fs, moto or none" ;;
esac
[ "$S3_BACKEND" = none ] && log "no S3 emulator: the S3 route is skipped (cargo install --locked s3s-fs@0.14.1 --features binary --root .tools/cargo)"

# Scenarios: "random:BYTES" (incompressible layer of BYTES) and "targz:BYTES" (tar.gz layer
# holding a trivy.db of BYTES).
SCENARIOS=()
RANDOM_SIZES=()
MAX_BYTES=0
for s in $SIZES; do
  b=$(to_bytes "$s")
  [ "$b" -gt 16777216 ] || die "sizes must be above 16 MiB (the multipart threshold), got $s"
  SCENARIOS+=("random:$b"); RANDOM_SIZES+=("$b")
  [ "$b" -gt "$MAX_BYTES" ] && MAX_BYTES=$b
done
if [ "$DB_SIZE" != 0 ] && [ "$DB_SIZE" != none ]; then
  if command -v python3 >/dev/null; then
    SCENARIOS+=("targz:$(to_bytes "$DB_SIZE")")
  else
    log "no python3: the tar.gz layer is skipped"
  fi
fi
[ ${#SCENARIOS[@]} -gt 0 ] || [ "$LINK" = 1 ] || die "nothing to measure"

# ---------------------------------------------------------------- work dir, cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/trivy-mirror-bench.XXXXXX")
PIDS=()
SERVERS=()
cleanup() {
  local pid
  # A measured command runs under /usr/bin/time, which does not pass signals on: stop
  # the children of our own processes too (by parent PID), then the processes.
  for pid in "${PIDS[@]}"; do pkill -TERM -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1 GiB layer: the fixture, the source registry's copy, one destination copy (s3s-fs
# briefly holds parts and the assembled object): 4x the largest size, plus 1 GiB.
need_kib=$(( (MAX_BYTES * 4 + 1073741824) / 1024 ))
avail_kib=$(df -Pk "$WORK" | awk 'NR==2{print $4}')
[ "$avail_kib" -ge "$need_kib" ] ||
  die "not enough disk under $WORK: $((avail_kib / 1048576)) GiB free, $((need_kib / 1048576)) GiB needed"

# ---------------------------------------------------------------- build
if [ "$BUILD" = 1 ]; then
  log "cargo build --release (trivy-mirror, trivy-mirror-fixtures)"
  cargo build --release --quiet --bin trivy-mirror >&2 || die "cargo build --release failed"
  cargo build --release --quiet -p trivy-mirror-fixtures >&2 || die "building the fixture generator failed"
fi
mkdir -p "$WORK/bin"
# Private copies: other people may rebuild target/release while this runs.
cp "$ROOT/target/release/trivy-mirror" "$ROOT/target/release/trivy-mirror-fixtures" "$WORK/bin/" ||
  die "no release binaries (run without --no-build)"
TM=$WORK/bin/trivy-mirror
FX=$WORK/bin/trivy-mirror-fixtures

# Nothing run from here on may reach the internet.
export HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY=localhost,127.0.0.1
export http_proxy=$HTTP_PROXY https_proxy=$HTTPS_PROXY no_proxy=$NO_PROXY

# ---------------------------------------------------------------- processes
free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
  else
    local p
    while :; do p=$((20000 + RANDOM % 40000)); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }; done
  fi
}
wait_http() { # PORT PID
  local i
  for i in $(seq 1 200); do
    kill -0 "$2" 2>/dev/null || return 1
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$1/" || true)" != 000 ] && return 0
    sleep 0.05
  done
  return 1
}
forget_pid() {
  local pid=$1 p keep=() s=()
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
  for p in "${SERVERS[@]}"; do [ "$p" = "$pid" ] || s+=("$p"); done
  SERVERS=("${s[@]}")
}
stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}

# start_registry DIR: CNCF distribution with filesystem storage and the access log on
# (one stdout line per request). Sets R_PID, R_PORT.
start_registry() {
  local dir=$1
  R_PORT=$(free_port)
  mkdir -p "$dir/data"
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: 127.0.0.1:$R_PORT
  secret: trivy-mirror-bench
EOF
  docker-registry serve "$dir/config.yml" >"$dir/access.log" 2>"$dir/registry.log" &
  R_PID=$!
  PIDS+=("$R_PID"); SERVERS+=("$R_PID")
  wait_http "$R_PORT" "$R_PID" || die "docker-registry did not start: $(tail -5 "$dir/registry.log")"
}

# start_s3 DIR: the S3 emulator with bucket `bench`. Sets S_PID, S_PORT, S_LOG.
S3_KEY=bench S3_SECRET=bench-secret-key
start_s3() {
  local dir=$1
  S_PORT=$(free_port)
  S_LOG=$dir/s3.log
  mkdir -p "$dir/root"
  if [ "$S3_BACKEND" = s3s-fs ]; then
    mkdir -p "$dir/root/bench" # s3s-fs: a bucket is a directory
    RUST_LOG=s3s::service=debug NO_COLOR=1 "$S3FS_BIN" --host 127.0.0.1 --port "$S_PORT" \
      --access-key "$S3_KEY" --secret-key "$S3_SECRET" "$dir/root" >"$S_LOG" 2>&1 &
  else
    "$MOTO_BIN" -H 127.0.0.1 -p "$S_PORT" >"$S_LOG" 2>&1 &
  fi
  S_PID=$!
  PIDS+=("$S_PID"); SERVERS+=("$S_PID")
  wait_http "$S_PORT" "$S_PID" || die "$S3_BACKEND did not start: $(tail -5 "$S_LOG")"
  if [ "$S3_BACKEND" = moto ]; then
    curl -sf -X PUT "http://127.0.0.1:$S_PORT/bench" >/dev/null || die "creating the moto bucket failed"
  fi
}
s3_requests() { # requests the S3 emulator has logged
  if [ "$S3_BACKEND" = s3s-fs ]; then grep -c 's3s::service: req:' "$S_LOG" || true
  else grep -cE '"(GET|PUT|POST|HEAD|DELETE) ' "$S_LOG" || true; fi
}
lines() { wc -l <"$1" | tr -d ' '; }

# ---------------------------------------------------------------- measuring
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
proc_ticks() { # utime+stime of the given PIDs
  local t=0 p v
  for p in "$@"; do
    v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12+$13}') || v=0
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

# Wait (at most QUIET_WAIT s) until other processes use at most MAX_NOISE % of the CPUs.
# After three waits in a row that ran out, stop waiting until a quiet second is seen
# again: the machine stays busy, and the noise column will say so.
QUIET_NOTES=0
QUIET_TIMEOUTS=0
NOISY=0
ACCEPT=0
wait_quiet() {
  local waited=0 b0 b1 pct limit=$QUIET_WAIT
  [ "$QUIET_WAIT" = 0 ] && return 0
  [ "$QUIET_TIMEOUTS" -ge 3 ] && limit=0 # given up: one look, no waiting
  while :; do
    b0=$(busy_ticks); sleep 1; b1=$(busy_ticks)
    pct=$((100 * (b1 - b0) / (HZ * NCPU)))
    if [ "$pct" -le "$MAX_NOISE" ]; then QUIET_TIMEOUTS=0; return 0; fi
    if [ "$limit" = 0 ]; then QUIET_NOTES=$((QUIET_NOTES + 1)); return 0; fi
    if [ "$waited" -ge "$limit" ]; then
      QUIET_TIMEOUTS=$((QUIET_TIMEOUTS + 1))
      QUIET_NOTES=$((QUIET_NOTES + 1))
      log "machine still busy (${pct}% CPU used by others) after ${QUIET_WAIT}s; measuring anyway"
      [ "$QUIET_TIMEOUTS" -ge 3 ] && log "the machine stays busy: no more waiting (see the noise column)"
      return 0
    fi
    [ "$waited" = 0 ] && log "waiting for the machine to calm down (${pct}% CPU busy)"
    waited=$((waited + 1))
  done
}

# measure OUT cmd… : run under /usr/bin/time. Sets M_RC M_WALL M_RSS (KiB) M_CPU (s),
# M_SRV (CPU s of our servers: source registry and destination) and M_NOISE (% of all
# CPUs used by anything but the command and our servers).
measure() {
  local out=$1; shift
  local b0 s0 b1 s1 u s
  b0=$(busy_ticks); s0=$(proc_ticks "${SERVERS[@]}")
  # In the background and waited for, so that Ctrl-C stops it at once (via the EXIT trap).
  /usr/bin/time -f '%e %M %U %S' -o "$out.time" "$@" >"$out.stdout" 2>"$out.stderr" &
  local pid=$!
  PIDS+=("$pid")
  set +e
  wait "$pid"
  M_RC=$?
  set -e
  forget_pid "$pid"
  b1=$(busy_ticks); s1=$(proc_ticks "${SERVERS[@]}")
  read -r M_WALL M_RSS u s < <(tail -n1 "$out.time")
  M_CPU=$(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.2f", u + s}')
  M_SRV=$(awk -v t=$((s1 - s0)) -v hz="$HZ" 'BEGIN{printf "%.2f", t / hz}')
  M_NOISE=$(awk -v b=$((b1 - b0)) -v sv=$((s1 - s0)) -v hz="$HZ" -v c="$M_CPU" -v w="$M_WALL" -v n="$NCPU" \
    'BEGIN{ if (w < 0.2) { print 0; exit } f = (b - sv) / hz - c; x = 100 * f / (w * n); printf "%.0f", (x < 0 ? 0 : x) }')
}
check() { # check OUT WHAT: the measured command must have succeeded
  [ "$M_RC" = 0 ] || die "$2 failed (exit $M_RC): $(tail -5 "$1.stderr")"
}

# ---------------------------------------------------------------- rows
# Row ids, in table order. Each repetition runs every row once (interleaved, so a
# disturbance spreads over all tools rather than hitting one).
rows_for() { # KIND
  local r=(floor-sha256sum)
  [ "$HAVE_OPENSSL" = 1 ] && r+=(floor-openssl)
  r+=(floor-curl floor-cp)
  [ "$1" = targz ] && r+=(floor-gunzip floor-untar)
  r+=(dir-trivy-mirror dir-skopeo dir-one-stream oci-trivy-mirror oci-skopeo export-tm export-skopeo import-tm import-tar)
  [ "$1" = targz ] && r+=(cache-tm)
  [ "$S3_BACKEND" != none ] && r+=(s3-trivy-mirror s3-trivy-mirror-unsigned)
  echo "${r[@]}"
}

route_of() {
  case $1 in
    floor-*) echo "floor" ;;
    dir-*) echo "registry -> dir" ;;
    oci-*) echo "registry -> registry" ;;
    s3-*) echo "registry -> S3 ($S3_BACKEND)" ;;
    export-*) echo "registry -> bundle" ;;
    import-*) echo "bundle -> dir" ;;
    cache-*) echo "bundle -> trivy-cache" ;;
  esac
}
tool_of() {
  case $1 in
    floor-sha256sum) echo "sha256sum FILE" ;;
    floor-openssl) echo "openssl dgst -sha256 FILE" ;;
    floor-curl) echo "curl GET -> /dev/null" ;;
    floor-gunzip) echo "gzip -dc FILE (inflate)" ;;
    floor-cp) echo "cp FILE DIR/" ;;
    floor-untar) echo "tar -xzf FILE (unpack the layer)" ;;
    export-tm) echo "trivy-mirror --to oci-archive:" ;;
    export-skopeo) echo "skopeo copy oci-archive:" ;;
    import-tm) echo "trivy-mirror --source oci-archive:" ;;
    import-tar) echo "tar -xf BUNDLE" ;;
    cache-tm) echo "trivy-mirror --to trivy-cache:" ;;
    *-trivy-mirror-unsigned) echo "trivy-mirror AWS_UNSIGNED_PAYLOAD=true" ;;
    *-trivy-mirror) echo "trivy-mirror" ;;
    *-one-stream) echo "trivy-mirror --range-parts 1" ;;
    *-skopeo) echo "skopeo" ;;
  esac
}

# sample ROW REP: one repetition of one row; appends "wall rss_kib cpu noise src dst" to
# RES/ROW, plus the servers' CPU seconds (and for trivy-mirror the no-op rerun "wall rss_kib src dst" to RES/ROW.rerun).
# Returns 1 when the run was disturbed (noise above MAX_NOISE) and should be repeated.
sample() {
  local row=$1 rep=$2 out=$WORK/run/$1.$2 dest src0 dst0 src_n dst_n="-" cnt_dst=""
  local tm_env=() rr=""
  mkdir -p "$WORK/run" "$WORK/dest"
  rm -rf "$WORK/dest"/*
  case $row in
    floor-*) ;;
    dir-*) dest=$WORK/dest/dir ;;
    oci-*) start_registry "$WORK/dest/registry"; DST_PID=$R_PID; DST_PORT=$R_PORT
           cnt_dst="lines $WORK/dest/registry/access.log" ;;
    s3-*) start_s3 "$WORK/dest/s3"; DST_PID=$S_PID; cnt_dst="s3_requests"
          tm_env=(env "AWS_ENDPOINT_URL=http://127.0.0.1:$S_PORT" AWS_ALLOW_HTTP=true
                  "AWS_ACCESS_KEY_ID=$S3_KEY" "AWS_SECRET_ACCESS_KEY=$S3_SECRET" AWS_REGION=us-east-1)
          [ "$row" = s3-trivy-mirror-unsigned ] && tm_env+=(AWS_UNSIGNED_PAYLOAD=true) ;;
  esac
  wait_quiet
  src0=$(lines "$SRC_LOG"); dst0=0; [ -n "$cnt_dst" ] && dst0=$($cnt_dst)
  local tm_cmd=("${tm_env[@]}" "$TM" -q sync --only db --source "127.0.0.1:$SRC_PORT/aquasecurity")
  case $row in
    floor-sha256sum) measure "$out" sha256sum "$BLOB_FILE"; check "$out" sha256sum
                     grep -q "^$BLOB_HEX " "$out.stdout" || die "sha256sum: wrong digest" ;;
    floor-openssl) measure "$out" openssl dgst -sha256 "$BLOB_FILE"; check "$out" openssl
                   grep -q "$BLOB_HEX" "$out.stdout" || die "openssl: wrong digest" ;;
    floor-curl) measure "$out" curl -sS -o /dev/null "$BLOB_URL"; check "$out" curl ;;
    floor-gunzip) measure "$out" sh -c 'gzip -dc "$1" >/dev/null' sh "$BLOB_FILE"; check "$out" "gzip -dc" ;;
    floor-cp) measure "$out" cp "$BLOB_FILE" "$WORK/dest/copy"; check "$out" cp ;;
    floor-untar) mkdir -p "$WORK/dest/untar"; measure "$out" tar -xzf "$BLOB_FILE" -C "$WORK/dest/untar"; check "$out" "tar -xzf" ;;
    export-tm) measure "$out" "${tm_cmd[@]}" --to "oci-archive:$WORK/dest/bundle.tar"; check "$out" "trivy-mirror → oci-archive"
      [ "$(stat -c %s "$WORK/dest/bundle.tar")" -gt "$SIZE" ] || die "trivy-mirror → oci-archive: bundle missing or short" ;;
    export-skopeo) measure "$out" skopeo copy --quiet --preserve-digests --src-tls-verify=false \
        "docker://127.0.0.1:$SRC_PORT/aquasecurity/trivy-db:2" "oci-archive:$WORK/dest/skopeo.tar:aquasecurity/trivy-db:2"
      check "$out" "skopeo → oci-archive" ;;
    import-tm) measure "$out" "$TM" -q sync --only db --source "oci-archive:$BUNDLE" --to "$WORK/dest/dir"
      check "$out" "trivy-mirror oci-archive: → dir"
      [ "$(stat -c %s "$WORK/dest/dir/v2/aquasecurity/trivy-db/blobs/sha256:$BLOB_HEX")" = "$SIZE" ] || die "import: blob missing or wrong size" ;;
    import-tar) mkdir -p "$WORK/dest/x"; measure "$out" tar -xf "$BUNDLE" -C "$WORK/dest/x"; check "$out" "tar -xf" ;;
    cache-tm) measure "$out" "$TM" -q sync --only db --source "oci-archive:$BUNDLE" --to "trivy-cache:$WORK/dest/cache"
      check "$out" "trivy-mirror → trivy-cache"
      [ -s "$WORK/dest/cache/db/trivy.db" ] || die "trivy-cache: no db/trivy.db" ;;
    dir-trivy-mirror) measure "$out" "${tm_cmd[@]}" --to "$dest"; check "$out" "trivy-mirror → dir"
      [ "$(stat -c %s "$dest/v2/aquasecurity/trivy-db/blobs/sha256:$BLOB_HEX")" = "$SIZE" ] || die "trivy-mirror → dir: blob missing or wrong size" ;;
    dir-one-stream) measure "$out" "${tm_cmd[@]}" --range-parts 1 --to "$dest"; check "$out" "trivy-mirror --range-parts 1 → dir"
      [ "$(stat -c %s "$dest/v2/aquasecurity/trivy-db/blobs/sha256:$BLOB_HEX")" = "$SIZE" ] || die "trivy-mirror --range-parts 1 → dir: blob missing or wrong size" ;;
    dir-skopeo) measure "$out" skopeo copy --quiet --preserve-digests --src-tls-verify=false \
        "docker://127.0.0.1:$SRC_PORT/aquasecurity/trivy-db:2" "dir:$dest"; check "$out" "skopeo → dir"
      [ "$(stat -c %s "$dest/$BLOB_HEX")" = "$SIZE" ] || die "skopeo → dir: blob missing or wrong size" ;;
    oci-trivy-mirror) measure "$out" "${tm_cmd[@]}" --to "oci://127.0.0.1:$DST_PORT/x"; check "$out" "trivy-mirror → registry" ;;
    oci-skopeo) measure "$out" skopeo copy --quiet --preserve-digests --src-tls-verify=false --dest-tls-verify=false \
        "docker://127.0.0.1:$SRC_PORT/aquasecurity/trivy-db:2" "docker://127.0.0.1:$DST_PORT/x/aquasecurity/trivy-db:2"
      check "$out" "skopeo → registry" ;;
    s3-*) measure "$out" "${tm_cmd[@]}" --to s3://bench/mirror; check "$out" "trivy-mirror → S3" ;;
  esac
  case $row in *-trivy-mirror*|*-tm|*-one-stream) grep -q ' written ' "$out.stdout" || die "$row: summary does not say written: $(cat "$out.stdout")" ;; esac
  local wall=$M_WALL rss=$M_RSS cpu=$M_CPU noise=$M_NOISE srv=$M_SRV
  sleep 0.3 # distribution writes its access-log line after the response
  src_n=$(( $(lines "$SRC_LOG") - src0 ))
  [ -n "$cnt_dst" ] && dst_n=$(( $($cnt_dst) - dst0 ))
  case $row in floor-sha256sum|floor-openssl|floor-gunzip|floor-cp|floor-untar|import-*|cache-*) src_n="-" ;; esac

  # The rerun: same command, same destination, nothing changed upstream.
  case $row in *-trivy-mirror*)
    local rsrc0 rdst0 rdst="-" rto
    case $row in dir-*) rto=$dest ;; oci-*) rto="oci://127.0.0.1:$DST_PORT/x" ;; s3-*) rto=s3://bench/mirror ;; esac
    rsrc0=$(lines "$SRC_LOG"); rdst0=0; [ -n "$cnt_dst" ] && rdst0=$($cnt_dst)
    measure "$out.rerun" "${tm_cmd[@]}" --to "$rto"; check "$out.rerun" "$row rerun"
    grep -q ' unchanged ' "$out.rerun.stdout" || die "$row rerun: summary does not say unchanged: $(cat "$out.rerun.stdout")"
    sleep 0.3
    [ -n "$cnt_dst" ] && rdst=$(( $($cnt_dst) - rdst0 ))
    rr="$M_WALL $M_RSS $(( $(lines "$SRC_LOG") - rsrc0 )) $rdst"
  ;; esac

  case $row in oci-*|s3-*) stop_pid "$DST_PID" ;; esac
  rm -rf "$WORK/dest"/* "$out".*
  if [ "$noise" -gt "$MAX_NOISE" ]; then
    if [ "$ACCEPT" = 0 ]; then
      log "  $row rep $rep: ${wall}s but ${noise}% of the CPUs were busy with other work; again"
      return 1
    fi
    NOISY=$((NOISY + 1))
  fi
  echo "$wall $rss $cpu $noise $src_n $dst_n $srv" >>"$RES/$row"
  [ -n "$rr" ] && echo "$rr" >>"$RES/$row.rerun"
  log "  $row rep $rep: ${wall}s, ${rss} KiB, cpu ${cpu}s, noise ${noise}%${rr:+, rerun ${rr%% *}s}"
  return 0
}

# ---------------------------------------------------------------- run
START_UPTIME=$(uptime)
log "work dir $WORK; layers: ${SCENARIOS[*]}; $REPS repetitions; S3 emulator: $S3_BACKEND"
log "load: $START_UPTIME"
UPTIMES=()
declare -A LABELS SIZES_OF
for SC in "${SCENARIOS[@]}"; do
  KIND=${SC%%:*}; PARAM=${SC#*:}
  RES=$WORK/results/$KIND-$PARAM
  mkdir -p "$RES"
  log "== $KIND layer $(label_of "$PARAM"): generating the fixture and seeding the source registry"
  if [ "$KIND" = random ]; then
    "$FX" big-layer "$WORK/fixture" "$PARAM" >"$WORK/fixture.out" || die "fixture generation failed"
  else
    python3 "$ROOT/scripts/bench/db-layer.py" "$WORK/fixture" "$PARAM" >"$WORK/fixture.out" || die "tar.gz layer generation failed"
  fi
  start_registry "$WORK/source"
  SRC_PID=$R_PID; SRC_PORT=$R_PORT; SRC_LOG=$WORK/source/access.log
  skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$WORK/fixture:2" \
    "docker://127.0.0.1:$SRC_PORT/aquasecurity/trivy-db:2" >&2 || die "seeding with skopeo failed"
  rm -rf "$WORK/fixture"
  # The bundle the import rows read, written once per layer.
  BUNDLE=$WORK/bundle.tar
  "$TM" -q sync --only db --source "127.0.0.1:$SRC_PORT/aquasecurity" --to "oci-archive:$BUNDLE" >/dev/null || die "writing the bundle failed"
  BLOB_FILE=$(find "$WORK/source/data/docker/registry/v2/blobs/sha256" -type f -name data -size +1M)
  [ "$(printf '%s\n' "$BLOB_FILE" | wc -l)" = 1 ] || die "expected one layer blob in the source registry"
  BLOB_HEX=$(basename "$(dirname "$BLOB_FILE")")
  BLOB_URL="http://127.0.0.1:$SRC_PORT/v2/aquasecurity/trivy-db/blobs/sha256:$BLOB_HEX"
  SIZE=$(stat -c %s "$BLOB_FILE")
  SIZES_OF[$SC]=$SIZE
  if [ "$KIND" = random ]; then LABELS[$SC]="random $(label_of "$SIZE")"
  else LABELS[$SC]="tar.gz $(label_of "$SIZE") (db $(label_of "$PARAM"))"; fi
  LABEL=${LABELS[$SC]}
  read -r -a ROWS <<<"$(rows_for "$KIND")"
  UPTIMES+=("$LABEL start: $(uptime)")
  for rep in $(seq 1 "$REPS"); do
    log "-- $LABEL, repetition $rep/$REPS"
    for row in "${ROWS[@]}"; do
      tries=0
      while :; do
        ACCEPT=0; [ "$tries" -ge "$RETRIES" ] && ACCEPT=1
        sample "$row" "$rep" && break
        tries=$((tries + 1))
      done
    done
  done
  UPTIMES+=("$LABEL end:   $(uptime)")
  stop_pid "$SRC_PID"
  rm -rf "$WORK/source" "$BUNDLE"
done

# ---------------------------------------------------------------- no-op rerun of everything
# What a scheduled run does most of the time: every database (trivy-checks under both tags)
# and VEX, nothing changed upstream. First a sync that copies it all, then the measured rerun;
# requests are counted on the source registry, the VEX server and (S3) the destination.
ALL_ROUTES=(dir); [ "$S3_BACKEND" != none ] && ALL_ROUTES+=(s3)
ALL_RESULTS=()
log "== every database and VEX: first sync, then $REPS no-op reruns per route"
"$FX" oci-layout "$WORK/all" >"$WORK/all.out" || die "fixture generation failed"
VEX_PORT=$(free_port)
"$FX" vex "$WORK/vexsrc" "http://127.0.0.1:$VEX_PORT" >>"$WORK/all.out" || die "VEX fixture generation failed"
python3 -u -m http.server --bind 127.0.0.1 --directory "$WORK/vexsrc" "$VEX_PORT" >/dev/null 2>"$WORK/vex.log" &
VEX_PID=$!; PIDS+=("$VEX_PID"); SERVERS+=("$VEX_PID")
wait_http "$VEX_PORT" "$VEX_PID" || die "python3 -m http.server did not start"
start_registry "$WORK/source"
SRC_PID=$R_PID; SRC_PORT=$R_PORT; SRC_LOG=$WORK/source/access.log
for ref in trivy-db:2 trivy-java-db:1 trivy-checks:1 trivy-checks:2; do
  skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$WORK/all/${ref%%:*}:${ref#*:}" \
    "docker://127.0.0.1:$SRC_PORT/aquasecurity/$ref" >&2 || die "seeding $ref failed"
done
vex_requests() { grep -c '"GET ' "$WORK/vex.log" || true; }
for route in "${ALL_ROUTES[@]}"; do
  all_cmd=("$TM" -q sync --source "127.0.0.1:$SRC_PORT/aquasecurity" --base-url https://mirror.example.com
           --vex-source "http://127.0.0.1:$VEX_PORT/.well-known/vex-repository.json")
  cnt_dst=""
  if [ "$route" = dir ]; then
    rm -rf "$WORK/dest"; all_cmd+=(--to "$WORK/dest")
  else
    start_s3 "$WORK/dest-s3"; cnt_dst=s3_requests
    all_cmd=(env "AWS_ENDPOINT_URL=http://127.0.0.1:$S_PORT" AWS_ALLOW_HTTP=true "AWS_ACCESS_KEY_ID=$S3_KEY"
             "AWS_SECRET_ACCESS_KEY=$S3_SECRET" AWS_REGION=us-east-1 "${all_cmd[@]}" --to s3://bench/all)
  fi
  measure "$WORK/all-first" "${all_cmd[@]}"; check "$WORK/all-first" "first sync of everything ($route)"
  [ "$(grep -c ' written ' "$WORK/all-first.stdout")" = 5 ] || die "first sync ($route): expected 5 written: $(cat "$WORK/all-first.stdout")"
  : >"$WORK/all-$route"
  for rep in $(seq 1 "$REPS"); do
    sleep 0.3 # distribution writes its access-log line after the response
    s0=$(lines "$SRC_LOG"); v0=$(vex_requests); d0=0; [ -n "$cnt_dst" ] && d0=$($cnt_dst)
    measure "$WORK/all-rerun" "${all_cmd[@]}"; check "$WORK/all-rerun" "no-op rerun of everything ($route)"
    [ "$(grep -c ' unchanged ' "$WORK/all-rerun.stdout")" = 5 ] || die "rerun ($route): expected 5 unchanged: $(cat "$WORK/all-rerun.stdout")"
    sleep 0.3
    d="-"; [ -n "$cnt_dst" ] && d=$(( $($cnt_dst) - d0 ))
    echo "$M_WALL $M_RSS $(( $(lines "$SRC_LOG") - s0 )) $(( $(vex_requests) - v0 )) $d" >>"$WORK/all-$route"
  done
  [ "$route" = s3 ] && stop_pid "$S_PID"
  ALL_RESULTS+=("$route")
done
stop_pid "$SRC_PID"; stop_pid "$VEX_PID"
rm -rf "$WORK/source" "$WORK/all" "$WORK/dest" "$WORK/dest-s3"

# ---------------------------------------------------------------- shaped link
# What real users see: the registry answers blob GETs with a 307 to a CDN host that caps
# each connection (nginx `limit_rate`), serves Range, and refuses requests carrying
# credentials. The full set (trivy-db and trivy-java-db of --link-sizes, checks :1/:2) is
# copied by trivy-mirror (artifacts in parallel, ranged blobs) and by skopeo, one artifact
# after another as cron scripts do; the static route against skopeo + `aws s3 sync`.
LINK_RESULTS=()
if [ "$LINK" = 1 ]; then
  command -v nginx >/dev/null || die "nginx is missing (scripts/install-test-deps.sh)"
  read -r LINK_DB LINK_JAVA <<<"$LINK_SIZES"
  LINK_DB=$(to_bytes "$LINK_DB"); LINK_JAVA=$(to_bytes "$LINK_JAVA")
  RATE_BYTES=$(to_bytes "${LINK_RATE^^}")
  log "== shaped link: ${LINK_RATE}/s per connection; trivy-db $(label_of "$LINK_DB"), trivy-java-db $(label_of "$LINK_JAVA")"
  "$FX" big-layer "$WORK/link-db" "$LINK_DB" >/dev/null || die "fixture generation failed"
  "$FX" big-java-layer "$WORK/link-java" "$LINK_JAVA" >/dev/null || die "fixture generation failed"
  "$FX" oci-layout "$WORK/link-small" >/dev/null || die "fixture generation failed"
  start_registry "$WORK/link-src"
  LSRC_PID=$R_PID; LSRC_PORT=$R_PORT
  skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$WORK/link-db:2" "docker://127.0.0.1:$LSRC_PORT/aquasecurity/trivy-db:2" >&2
  skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$WORK/link-java:1" "docker://127.0.0.1:$LSRC_PORT/aquasecurity/trivy-java-db:1" >&2
  for ref in trivy-checks:1 trivy-checks:2; do
    skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$WORK/link-small/${ref%%:*}:${ref#*:}" \
      "docker://127.0.0.1:$LSRC_PORT/aquasecurity/$ref" >&2
  done
  rm -rf "$WORK/link-db" "$WORK/link-java" "$WORK/link-small"
  JAVA_HEX=$(find "$WORK/link-src/data/docker/registry/v2/blobs/sha256" -type f -name data -size "+$((LINK_JAVA / 1024 - 1))k" -size "-$((LINK_JAVA / 1024 + 1))k" | head -n1 | xargs dirname | xargs basename)
  # nginx: the CDN (blob files at the capped rate, Range served, credentials refused) and
  # the registry front (blob GET -> 307 to the CDN, the rest proxied to the registry).
  nginx_start() { # DIR PORT SERVER_BODY
    mkdir -p "$1"
    cat >"$1/nginx.conf" <<NGX
daemon off; master_process off; worker_processes 1; pid $1/nginx.pid; error_log $1/error.log warn;
events { worker_connections 256; }
http { access_log $1/access.log; client_body_temp_path $1/b; proxy_temp_path $1/p; fastcgi_temp_path $1/f;
  uwsgi_temp_path $1/u; scgi_temp_path $1/s; gzip off; types { } default_type application/octet-stream;
  server { listen 127.0.0.1:$2; $3 } }
NGX
    nginx -c "$1/nginx.conf" -p "$1" >/dev/null 2>&1 &
    local pid=$!; PIDS+=("$pid"); SERVERS+=("$pid"); wait_http "$2" "$pid" || die "nginx did not start"
    NGX_PID=$pid
  }
  CDN_PORT=$(free_port); FRONT_PORT=$(free_port)
  BLOBS=$WORK/link-src/data/docker/registry/v2/blobs/sha256
  nginx_start "$WORK/link-cdn" "$CDN_PORT" "location ~ ^/cdn/(..)(.*)\$ { if (\$http_authorization) { return 403; } alias $BLOBS/\$1/\$1\$2/data; limit_rate $LINK_RATE; }"
  CDN_PID=$NGX_PID
  nginx_start "$WORK/link-front" "$FRONT_PORT" "location ~ ^/v2/.+/blobs/sha256:(.+)\$ { return 307 http://127.0.0.1:$CDN_PORT/cdn/\$1; } location / { proxy_pass http://127.0.0.1:$LSRC_PORT; proxy_set_header Host \$http_host; }"
  FRONT_PID=$NGX_PID
  LSRC=127.0.0.1:$FRONT_PORT/aquasecurity
  LINK_TOTAL=$(( LINK_DB + LINK_JAVA ))
  link_row() { # NAME cmd… : one measured run, appended to $WORK/link-NAME as "wall rss cpu"
    local name=$1; shift
    rm -rf "$WORK/link-dest"; mkdir -p "$WORK/link-dest"
    measure "$WORK/link-run" "$@"; check "$WORK/link-run" "$name"
    echo "$M_WALL $M_RSS $M_CPU" >>"$WORK/link-$name"
    log "  link $name: ${M_WALL}s, ${M_RSS} KiB"
  }
  skopeo_all() { # DEST_DIR: every artifact in turn
    for ref in trivy-db:2 trivy-java-db:1 trivy-checks:1 trivy-checks:2; do
      skopeo copy --quiet --preserve-digests --src-tls-verify=false "docker://$LSRC/$ref" "dir:$1/${ref/:/-}" || return 1
    done
  }
  HAVE_AWS=0; command -v aws >/dev/null && aws --version >/dev/null 2>&1 && HAVE_AWS=1
  LINK_REPS=$(( REPS < 2 ? REPS : 2 ))
  for rep in $(seq 1 "$LINK_REPS"); do
    log "-- shaped link, repetition $rep/$LINK_REPS"
    link_row curl curl -sS -o "$WORK/link-dest/java" "http://127.0.0.1:$CDN_PORT/cdn/$JAVA_HEX"
    link_row blob-tm "$TM" -q sync --only java-db --source "$LSRC" --to "$WORK/link-dest/m"
    link_row full-tm "$TM" -q sync --only db,java-db,checks --source "$LSRC" --to "$WORK/link-dest/m"
    link_row full-skopeo bash -c "$(declare -f skopeo_all); LSRC=$LSRC skopeo_all $WORK/link-dest"
    start_registry "$WORK/link-dreg"
    link_row oci-tm "$TM" -q sync --only db,java-db,checks --source "$LSRC" --to "oci://127.0.0.1:$R_PORT/x"
    link_row oci-skopeo sh -c "for ref in trivy-db:2 trivy-java-db:1 trivy-checks:1 trivy-checks:2; do
      skopeo copy --quiet --preserve-digests --src-tls-verify=false --dest-tls-verify=false \
        docker://$LSRC/\$ref docker://127.0.0.1:$R_PORT/y/aquasecurity/\$ref || exit 1; done"
    stop_pid "$R_PID"; rm -rf "$WORK/link-dreg"
    if [ "$S3_BACKEND" != none ]; then
      start_s3 "$WORK/link-s3"
      s3env=(env "AWS_ENDPOINT_URL=http://127.0.0.1:$S_PORT" AWS_ALLOW_HTTP=true "AWS_ACCESS_KEY_ID=$S3_KEY"
             "AWS_SECRET_ACCESS_KEY=$S3_SECRET" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1)
      link_row s3-tm "${s3env[@]}" "$TM" -q sync --only db,java-db,checks --source "$LSRC" --to "s3://bench/link-$rep"
      if [ "$HAVE_AWS" = 1 ]; then
        link_row s3-pipeline bash -c "$(declare -f skopeo_all); LSRC=$LSRC skopeo_all $WORK/link-dest && \
          ${s3env[*]} aws --endpoint-url http://127.0.0.1:$S_PORT s3 sync --quiet $WORK/link-dest s3://bench/pipeline-$rep"
      fi
      stop_pid "$S_PID"; rm -rf "$WORK/link-s3"
    fi
  done
  stop_pid "$CDN_PID"; stop_pid "$FRONT_PID"; stop_pid "$LSRC_PID"
  rm -rf "$WORK/link-src" "$WORK/link-dest"
  LINK_RESULTS=(curl blob-tm full-tm full-skopeo oci-tm oci-skopeo)
  [ -f "$WORK/link-s3-tm" ] && LINK_RESULTS+=(s3-tm)
  [ -f "$WORK/link-s3-pipeline" ] && LINK_RESULTS+=(s3-pipeline)
fi

# ---------------------------------------------------------------- report
median() { sort -n | awk '{a[NR]=$1} END{ if (NR == 0) print "-"; else if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2] + a[NR/2+1]) / 2 }'; }
col() { awk -v c="$2" '{print $c}' "$1"; }
maxcol() { awk -v c="$2" 'BEGIN{m=0} $c+0 > m {m=$c+0} END{print m}' "$1"; }
mincol() { awk -v c="$2" 'NR==1 || $c+0 < m {m=$c+0} END{printf "%.2f", m}' "$1"; }
maxs() { awk -v c="$2" 'BEGIN{m=0} $c+0 > m {m=$c+0} END{printf "%.2f", m}' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k / 1024}'; }

fmt_row() { printf '| %-30s | %-23s | %-38s | %8s | %11s | %6s | %12s | %6s | %13s | %8s | %11s | %16s | %7s |\n' "$@"; }

TARGET_LINES=()
declare -A RSS_BY
echo
echo "trivy-mirror benchmark: scripts/bench.sh${ARGS:+ $ARGS}"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(uname -srm); $NCPU CPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)); $(awk '/MemTotal/{printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo)"
echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(GIT_OPTIONAL_LOCKS=0 git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ' + uncommitted changes in the tree')"
echo "- $("$TM" --version); $(skopeo --version); $(docker-registry --version 2>&1 | awk '{print "docker-registry " $3}'); S3 emulator: $S3_BACKEND$( [ "$S3_BACKEND" = s3s-fs ] && echo " $("$S3FS_BIN" --version 2>/dev/null | awk '{print $2}')")"
echo "- $REPS repetitions per row, interleaved; median wall time; peak RSS = max over repetitions (/usr/bin/time %M$TIME_NOTE); warm page cache"
echo "- CPU s = user+sys of the command; server CPU s = CPU of the source registry and the destination server during it (medians)"
echo "- noise = CPU used by other processes during the run, % of all $NCPU CPUs (max over repetitions); runs above $MAX_NOISE % were repeated (at most $RETRIES times)"
echo "- load: start $START_UPTIME"
for u in "${UPTIMES[@]}"; do echo "- load: $u"; done
echo "- load: end   $(uptime)"
echo
fmt_row layer route tool "median s" "min-max s" "MiB/s" "peak RSS MiB" "CPU s" "server CPU s" "x skopeo" "x sha256sum" "requests src/dst" "noise %"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' -------------------------------- ------------------------- ---------------------------------------- ---------: ------------: -------: -------------: -------: --------------: ---------: ------------: -----------------: --------:
for SC in "${SCENARIOS[@]}"; do
  KIND=${SC%%:*}; PARAM=${SC#*:}; RES=$WORK/results/$KIND-$PARAM; SIZE=${SIZES_OF[$SC]}; LABEL=${LABELS[$SC]}
  read -r -a ROWS <<<"$(rows_for "$KIND")"
  sha_med=$(col "$RES/floor-sha256sum" 1 | median)
  for row in "${ROWS[@]}"; do
    f=$RES/$row
    med=$(col "$f" 1 | median)
    mibs=$(awk -v s="$SIZE" -v t="$med" 'BEGIN{ printf "%.0f", (t > 0 ? s / 1048576 / t : 0) }')
    rss=$(mib "$(maxcol "$f" 2)")
    vs_sk="-"
    case $row in dir-*|oci-*|export-*) vs_sk=$(ratio "$med" "$(col "$RES/${row%%-*}-skopeo" 1 | median)") ;; esac
    fmt_row "$LABEL" "$(route_of "$row")" "$(tool_of "$row")" "$med" "$(mincol "$f" 1)-$(maxs "$f" 1)" "$mibs" "$rss" \
      "$(col "$f" 3 | median)" "$(col "$f" 7 | median)" "$vs_sk" "$(ratio "$med" "$sha_med")" "$(tail -n1 "$f" | awk '{print $5 "/" $6}')" "$(maxcol "$f" 4)"
    case $row in
      dir-trivy-mirror|oci-trivy-mirror)
        TARGET_LINES+=("$(awk -v r="$vs_sk" -v l="$LABEL" -v rt="$(route_of "$row")" 'BEGIN{ printf "%-6s wall time <= skopeo: %s, %s: %.2fx skopeo", (r <= 1 ? "MET" : "MISSED"), rt, l, r }')") ;;
    esac
    # Ranged downloads must not slow a registry that serves blobs itself at loopback speed:
    # the default run against the same command with one stream per blob (within 10 %, or
    # 0.02 s: twice the timer's resolution).
    if [ "$row" = dir-trivy-mirror ]; then
      one=$(col "$RES/dir-one-stream" 1 | median)
      TARGET_LINES+=("$(awk -v a="$med" -v b="$one" -v l="$LABEL" 'BEGIN{ ok = (a <= 1.1 * b || a - b <= 0.02); printf "%-6s loopback no slower than one stream per blob (--range-parts 1, %.2f s): registry -> dir, %s: %.2f s = %.2fx", (ok ? "MET" : "MISSED"), b, l, a, (b > 0 ? a / b : 0) }')")
    fi
    case $row in *-trivy-mirror) RSS_BY[$row:$SC]=$rss ;; esac
    # Air gap: a bundle costs no more than ~1.3x copying the same bytes (cp; tar for the
    # cache, which must inflate and unpack the layer), within the memory budget.
    floor=""
    case $row in export-tm|import-tm) floor=floor-cp ;; cache-tm) floor=floor-untar ;; esac
    if [ -n "$floor" ]; then
      fmed=$(col "$RES/$floor" 1 | median)
      fr=$(ratio "$med" "$fmed")
      TARGET_LINES+=("$(awk -v r="$fr" -v l="$LABEL" -v rt="$(route_of "$row")" -v f="$(tool_of "$floor")" 'BEGIN{ if (r == "-") printf "n/a    wall time <= 1.3x %s: %s, %s: the floor is under the timer resolution (0.01 s)", f, rt, l; else printf "%-6s wall time <= 1.3x %s: %s, %s: %.2fx", (r <= 1.3 ? "MET" : "MISSED"), f, rt, l, r }')")
      # What really bounds a verified copy: the bytes written and their sha256 computed.
      if [ "$floor" = floor-cp ] && [ "$HAVE_OPENSSL" = 1 ]; then
        both=$(awk -v a="$fmed" -v b="$(col "$RES/floor-openssl" 1 | median)" 'BEGIN{printf "%.2f", a + b}')
        br=$(ratio "$med" "$both")
        TARGET_LINES+=("$(awk -v r="$br" -v l="$LABEL" -v rt="$(route_of "$row")" -v b="$both" 'BEGIN{ if (r == "-") printf "n/a    wall time <= 1.3x (cp + openssl dgst): %s, %s: the floor is under the timer resolution", rt, l; else printf "%-6s wall time <= 1.3x (cp + openssl dgst = %.2f s): %s, %s: %.2fx", (r <= 1.3 ? "MET" : "MISSED"), b, rt, l, r }')")
      fi
      TARGET_LINES+=("$(awk -v r="$rss" -v l="$LABEL" -v rt="$(route_of "$row")" 'BEGIN{ printf "%-6s peak RSS <= 64 MiB: %s, %s: %.1f MiB", (r <= 64 ? "MET" : "MISSED"), rt, l, r }')")
    fi
  done
done
echo
echo "No-op rerun (the same sync again, nothing changed upstream):"
echo
printf '| %-30s | %-23s | %8s | %6s | %12s | %12s | %12s |\n' layer route "median s" "max s" "peak RSS MiB" "requests src" "requests dst"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' -------------------------------- ------------------------- ---------: -------: -------------: -------------: -------------:
for SC in "${SCENARIOS[@]}"; do
  KIND=${SC%%:*}; PARAM=${SC#*:}; RES=$WORK/results/$KIND-$PARAM; LABEL=${LABELS[$SC]}
  read -r -a ROWS <<<"$(rows_for "$KIND")"
  for row in "${ROWS[@]}"; do
    f=$RES/$row.rerun
    [ -f "$f" ] && [ "$row" != s3-trivy-mirror-unsigned ] || continue
    mx=$(maxs "$f" 1)
    src=$(tail -n1 "$f" | awk '{print $3}'); dst=$(tail -n1 "$f" | awk '{print $4}')
    printf '| %-30s | %-23s | %8s | %6s | %12s | %12s | %12s |\n' "$LABEL" "$(route_of "$row")" "$(col "$f" 1 | median)" "$mx" \
      "$(mib "$(maxcol "$f" 2)")" "$src" "$dst"
    n=$((src + ${dst/-/0}))
    TARGET_LINES+=("$(awk -v m="$mx" -v n="$n" -v l="$LABEL" -v rt="$(route_of "$row")" 'BEGIN{ printf "%-6s no-op rerun < 1 s and <= 12 requests: %s, %s: max %.2f s, %d requests", (m < 1 && n <= 12 ? "MET" : "MISSED"), rt, l, m, n }')")
  done
done
echo
echo "No-op rerun of every database and VEX (trivy-db:2, trivy-java-db:1, trivy-checks:1 and :2, VEX Hub):"
echo
printf '| %-23s | %8s | %6s | %12s | %12s | %12s | %12s | %14s |\n' route "median s" "max s" "peak RSS MiB" "requests src" "requests VEX" "requests dst" "requests total"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' ------------------------- ---------: -------: -------------: -------------: -------------: -------------: ---------------:
for route in "${ALL_RESULTS[@]}"; do
  f=$WORK/all-$route
  rt="registry -> dir"; [ "$route" = s3 ] && rt="registry -> S3 ($S3_BACKEND)"
  read -r _ _ src vex dst < <(tail -n1 "$f")
  n=$((src + vex + ${dst/-/0})); mx=$(maxs "$f" 1)
  printf '| %-23s | %8s | %6s | %12s | %12s | %12s | %12s | %14s |\n' "$rt" "$(col "$f" 1 | median)" "$mx" \
    "$(mib "$(maxcol "$f" 2)")" "$src" "$vex" "$dst" "$n"
  # Upstream (the shared, rate-limited side: source registry + VEX server): 4 manifest GETs
  # and the VEX manifest + archive. Destination: per artifact one tag GET (VEX Hub is an
  # artifact like the databases since #21), VEX's published files one GET (the rewritten
  # manifest) and one HEAD (the archive), status.json GET + PUT (9), plus the health check's
  # one HEAD per referenced blob (5 artifacts x 2 blobs; the two trivy-checks tags share
  # their config, so 9 are seen). A directory destination makes no requests ("-").
  up=$((src + vex))
  TARGET_LINES+=("$(awk -v m="$mx" -v u="$up" -v d="$dst" -v rt="$rt" 'BEGIN{ ok = (m < 1 && u <= 6 && (d == "-" || d + 0 <= 9 + 10)); printf "%-6s no-op rerun of every database and VEX < 1 s, <= 6 upstream and <= 9 + 10 (one per blob) destination requests: %s: max %.2f s, %d upstream requests (destination: %s)", (ok ? "MET" : "MISSED"), rt, m, u, d }')")
done
# Memory: <= 64 MiB at every size, and no growth from the smallest to the largest random layer.
if [ ${#RANDOM_SIZES[@]} -gt 0 ]; then
  small=random:${RANDOM_SIZES[0]}; big=random:$MAX_BYTES
  for row in $(rows_for random); do
    case $row in *-trivy-mirror) ;; *) continue ;; esac
    rt=$(route_of "$row")
    for SC in "${SCENARIOS[@]}"; do
      r=${RSS_BY[$row:$SC]}
      TARGET_LINES+=("$(awk -v r="$r" -v l="${LABELS[$SC]}" -v rt="$rt" 'BEGIN{ printf "%-6s peak RSS <= 64 MiB: %s, %s: %.1f MiB", (r <= 64 ? "MET" : "MISSED"), rt, l, r }')")
    done
    [ "$small" = "$big" ] && continue
    TARGET_LINES+=("$(awk -v b="${RSS_BY[$row:$big]}" -v s="${RSS_BY[$row:$small]}" -v lb="${LABELS[$big]}" -v ls="${LABELS[$small]}" -v rt="$rt" \
      'BEGIN{ printf "%-6s RSS does not grow with the blob: %s: %.1f MiB (%s) -> %.1f MiB (%s), %+.1f MiB", (b - s <= 16 ? "MET" : "MISSED"), rt, s, ls, b, lb, b - s }')")
  done
fi
if [ ${#LINK_RESULTS[@]} -gt 0 ]; then
  echo
  echo "Shaped link: registry -> 307 -> nginx CDN at ${LINK_RATE}/s per connection (Range served, credentials refused);"
  echo "full set = trivy-db $(label_of "$LINK_DB") + trivy-java-db $(label_of "$LINK_JAVA") + trivy-checks :1/:2; $LINK_REPS repetition(s), median:"
  echo
  printf '| %-48s | %-22s | %8s | %8s | %12s |\n' "what" "route" "median s" "MiB/s" "peak RSS MiB"
  printf '|%s|%s|%s|%s|%s|\n' -------------------------------------------------- ------------------------ ---------: ---------: -------------:
  declare -A LMED
  for r in "${LINK_RESULTS[@]}"; do
    f=$WORK/link-$r; med=$(col "$f" 1 | median); LMED[$r]=$med
    case $r in
      curl) what="curl -o FILE, java DB layer (one connection: the floor per connection)"; rt="CDN -> file"; bytes=$LINK_JAVA ;;
      blob-tm) what="trivy-mirror, java DB only (ranged)"; rt="registry -> dir"; bytes=$LINK_JAVA ;;
      full-tm) what="trivy-mirror, full set"; rt="registry -> dir"; bytes=$LINK_TOTAL ;;
      full-skopeo) what="skopeo copy of each artifact in turn"; rt="registry -> dir"; bytes=$LINK_TOTAL ;;
      oci-tm) what="trivy-mirror, full set"; rt="registry -> registry"; bytes=$LINK_TOTAL ;;
      oci-skopeo) what="skopeo copy of each artifact in turn"; rt="registry -> registry"; bytes=$LINK_TOTAL ;;
      s3-tm) what="trivy-mirror, full set"; rt="registry -> S3 ($S3_BACKEND)"; bytes=$LINK_TOTAL ;;
      s3-pipeline) what="skopeo each to dir, then aws s3 sync"; rt="registry -> S3 ($S3_BACKEND)"; bytes=$LINK_TOTAL ;;
    esac
    printf '| %-48s | %-22s | %8s | %8s | %12s |\n' "$what" "$rt" "$med" \
      "$(awk -v b="$bytes" -v t="$med" 'BEGIN{printf "%.1f", (t > 0 ? b / 1048576 / t : 0)}')" "$(mib "$(maxcol "$f" 2)")"
    case $r in *-tm) TARGET_LINES+=("$(awk -v r="$(mib "$(maxcol "$f" 2)")" -v w="$what, $rt" 'BEGIN{ printf "%-6s peak RSS <= 64 MiB on the shaped link: %s: %.1f MiB", (r <= 64 ? "MET" : "MISSED"), w, r }')") ;; esac
  done
  cap=$(awk -v b="$RATE_BYTES" 'BEGIN{printf "%.1f", b / 1048576}')
  TARGET_LINES+=("$(awk -v t="${LMED[blob-tm]}" -v b="$LINK_JAVA" -v c="$cap" 'BEGIN{ m = b / 1048576 / t; printf "%-6s single large blob >= 3x the per-connection cap (%.1f MiB/s): %.1f MiB/s = %.2fx", (m >= 3 * c ? "MET" : "MISSED"), c, m, m / c }')")
  for pair in "full-tm full-skopeo registry -> dir" "oci-tm oci-skopeo registry -> registry"; do
    read -r a b rt <<<"$pair"
    r=$(ratio "${LMED[$a]}" "${LMED[$b]}")
    TARGET_LINES+=("$(awk -v r="$r" -v rt="$rt" 'BEGIN{ printf "%-6s full set <= 0.35x skopeo on the shaped link: %s: %.2fx", (r <= 0.35 ? "MET" : "MISSED"), rt, r }')")
  done
  if [ -n "${LMED[s3-pipeline]:-}" ]; then
    r=$(ratio "${LMED[s3-tm]}" "${LMED[s3-pipeline]}")
    TARGET_LINES+=("$(awk -v r="$r" 'BEGIN{ printf "%-6s static route <= 0.5x skopeo + aws s3 sync: %.2fx", (r <= 0.5 ? "MET" : "MISSED"), r }')")
  elif [ -n "${LMED[s3-tm]:-}" ]; then
    TARGET_LINES+=("n/a    static route <= 0.5x skopeo + aws s3 sync: no aws CLI on this machine")
  fi
  TARGET_LINES+=("$(awk -v t="${LMED[full-tm]}" -v c="${LMED[curl]}" -v b="$LINK_TOTAL" -v j="$LINK_JAVA" 'BEGIN{ printf "info   floor: one connection moves the java DB in %.2f s (curl); the full set over one connection would take %.2f s; trivy-mirror: %.2f s", c, c * b / j, t }')")
fi
# serve vs nginx (issue 25): its own script, the same binary; its MET/MISSED lines join ours.
if [ "$SERVE" = 1 ]; then
  if command -v wrk >/dev/null; then
    log "scripts/bench-serve.sh"
    "$ROOT/scripts/bench-serve.sh" --bin "$TM" $([ "$REPS" = 3 ] && echo --duration 5s) >"$WORK/serve.out" ||
      die "scripts/bench-serve.sh failed"
    sed '/^MET \|^MISSED /d' "$WORK/serve.out"
    while IFS= read -r l; do TARGET_LINES+=("$l"); done < <(grep '^MET \|^MISSED ' "$WORK/serve.out")
  else
    TARGET_LINES+=("n/a    serve vs nginx: wrk is not installed (scripts/install-test-deps.sh)")
  fi
fi
echo
echo "Targets:"
echo
printf '%s\n' "${TARGET_LINES[@]}" | sed 's/^/    /'
echo
echo "Commands (SRC: the source registry; DST: a fresh registry or S3 emulator for each repetition):"
echo
cat <<EOF
    trivy-mirror -q sync --only db --source 127.0.0.1:SRC/aquasecurity --to DIR | oci://127.0.0.1:DST/x | s3://bench/mirror | oci-archive:FILE
    trivy-mirror -q sync --only db --source oci-archive:BUNDLE --to DIR | trivy-cache:DIR
    skopeo copy --quiet --preserve-digests docker://127.0.0.1:SRC/aquasecurity/trivy-db:2 oci-archive:FILE:aquasecurity/trivy-db:2
    cp FILE DIR/; tar -xf BUNDLE -C DIR; tar -xzf FILE -C DIR
    skopeo copy --quiet --preserve-digests --src-tls-verify=false docker://127.0.0.1:SRC/aquasecurity/trivy-db:2 dir:DIR
    skopeo copy --quiet --preserve-digests --src-tls-verify=false --dest-tls-verify=false \\
      docker://127.0.0.1:SRC/aquasecurity/trivy-db:2 docker://127.0.0.1:DST/x/aquasecurity/trivy-db:2
    sha256sum FILE; openssl dgst -sha256 FILE; gzip -dc FILE >/dev/null
    curl -sS -o /dev/null http://127.0.0.1:SRC/v2/aquasecurity/trivy-db/blobs/sha256:<layer>
    (FILE: the layer's data file in the source registry's storage; every command under /usr/bin/time -f '%e %M %U %S')
EOF
if [ "$NOISY" -gt 0 ] || [ "$QUIET_NOTES" -gt 0 ]; then
  echo
  echo "Note: $NOISY repetition(s) kept although other processes used more than $MAX_NOISE % of the CPUs"
  echo "(after $RETRIES retries); $QUIET_NOTES started without a quiet second. See the noise column; rerun on an idle machine."
fi
exit 0
