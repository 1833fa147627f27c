#!/usr/bin/env bash
# `trivy-mirror serve` against nginx (sendfile on, keep-alive) on the same directory, with
# wrk on loopback (issue 25). Prints a table and MET/MISSED target lines:
#
#   small object (the trivy-db manifest)   serve >= 0.8x nginx req/s
#   a 128 MiB blob                          serve >= 0.9x nginx MiB/s
#   both over TLS                           serve+TLS >= 0.7x nginx+TLS
#   with Basic auth (small object)          >= 0.8x serve's own rate without it
#   peak RSS at 256 connections             <= 64 MiB (small objects and the blob)
#
# Both servers run with their access log off (serve -q), nginx with one worker per CPU.
# Everything listens on 127.0.0.1 and is stopped by PID on exit.
#
# Usage: scripts/bench-serve.sh [--duration 10s] [--blob-size 128M] [--bin PATH] [--no-build] [--keep]
# Needs: wrk, nginx, openssl, htpasswd (apache2-utils), curl, sha256sum
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

usage() { sed -n '/^# Usage:/,/^# Needs:/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

DURATION=10s
BLOB_SIZE=128M
BIN=
BUILD=1
KEEP=0
bad_usage() { echo "unknown argument: $1" >&2; usage >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --duration|--blob-size|--bin) [ $# -ge 2 ] || bad_usage "$1" ;;
  esac
  case $1 in
    --duration) DURATION=$2; shift ;;
    --blob-size) BLOB_SIZE=$2; shift ;;
    --bin) BIN=$2; BUILD=0; shift ;;
    --no-build|--keep) [ "$1" = --keep ] && KEEP=1 || BUILD=0 ;;
    -h|--help) usage; exit 0 ;;
    *) bad_usage "$1" ;;
  esac; shift
done

log() { printf '[bench-serve %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
for t in wrk nginx openssl htpasswd curl sha256sum; do
  command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || die "$t is missing (scripts/install-test-deps.sh installs it)"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/trivy-mirror-bench-serve.XXXXXX")
chmod 755 "$WORK" # nginx workers run as an unprivileged user
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$BUILD" = 1 ]; then
  log "cargo build --release"
  cargo build --release --quiet --bin trivy-mirror >&2 || die "cargo build --release failed"
fi
if [ -z "$BIN" ]; then BIN=$ROOT/target/release/trivy-mirror; fi
cp "$BIN" "$WORK/trivy-mirror"
TM=$WORK/trivy-mirror

export HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY=localhost,127.0.0.1
export http_proxy=$HTTP_PROXY https_proxy=$HTTPS_PROXY no_proxy=$NO_PROXY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # PORT PID
  local i
  for i in $(seq 1 200); do
    kill -0 "$2" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# ---------------------------------------------------------------- the directory
DIR=$WORK/mirror
REPO=$DIR/v2/aquasecurity/trivy-db
mkdir -p "$REPO/manifests" "$REPO/blobs"
printf '{}' >"$DIR/v2/index.json"
log "a $BLOB_SIZE blob of random bytes"
head -c "$BLOB_SIZE" /dev/urandom >"$WORK/blob"
HEX=$(sha256sum "$WORK/blob" | cut -c1-64)
BLOB_BYTES=$(stat -c %s "$WORK/blob")
mv "$WORK/blob" "$REPO/blobs/sha256:$HEX"
cat >"$REPO/manifests/2" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.aquasec.trivy.config.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="},"layers":[{"mediaType":"application/vnd.aquasec.trivy.db.layer.v1.tar+gzip","digest":"sha256:$HEX","size":$BLOB_BYTES,"annotations":{"org.opencontainers.image.title":"db.tar.gz"}}],"annotations":{"org.opencontainers.image.created":"2026-12-01T00:00:00Z"}}
EOF
SMALL=/v2/aquasecurity/trivy-db/manifests/2
BLOB=/v2/aquasecurity/trivy-db/blobs/sha256:$HEX

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
htpasswd -cbB "$WORK/htpasswd" bench bench-password 2>/dev/null
AUTH="Authorization: Basic $(printf 'bench:bench-password' | base64)"

# ---------------------------------------------------------------- servers
NG_PORT=$(free_port); NG_TLS_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes $(nproc);
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/nginx/body; proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi; uwsgi_temp_path $WORK/nginx/uwsgi; scgi_temp_path $WORK/nginx/scgi;
  types { } default_type application/octet-stream;
  server {
    listen 127.0.0.1:$NG_PORT;
    listen 127.0.0.1:$NG_TLS_PORT ssl;
    ssl_certificate $WORK/tls.crt; ssl_certificate_key $WORK/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $DIR;
    location = /v2/ { rewrite ^ /v2/index.json last; }
  }
}
EOF
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" >"$WORK/nginx/stdout.log" 2>&1 &
NG_PID=$!; PIDS+=("$NG_PID")
wait_port "$NG_TLS_PORT" "$NG_PID" || die "nginx did not start: $(cat "$WORK/nginx/error.log")"

start_serve() { # NAME FLAGS... ; sets PORT_<NAME>, PID_<NAME>
  local name=$1 port pid; shift
  port=$(free_port)
  "$TM" -q serve "$DIR" --listen "127.0.0.1:$port" "$@" >"$WORK/serve-$name.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_port "$port" "$pid" || die "serve $name did not start: $(cat "$WORK/serve-$name.log")"
  printf -v "PORT_$name" %s "$port"; printf -v "PID_$name" %s "$pid"
}
start_serve plain
start_serve tls --tls-cert "$WORK/tls.crt" --tls-key "$WORK/tls.key"
start_serve auth --htpasswd "$WORK/htpasswd"
curl -sf -o /dev/null "http://127.0.0.1:$NG_PORT$SMALL" || die "nginx does not answer: $(cat "$WORK/nginx/error.log")"
curl -sf -o /dev/null "http://127.0.0.1:$PORT_plain$SMALL" || die "serve does not answer"
curl -sf -o /dev/null -H "$AUTH" "http://127.0.0.1:$PORT_auth$SMALL" || die "serve with auth refuses the credentials"
curl -sfk -o /dev/null "https://127.0.0.1:$PORT_tls$SMALL" || die "serve over TLS does not answer"

# ---------------------------------------------------------------- measuring
# run_wrk CONNECTIONS URL [HEADER]: prints "req/s MiB/s"
run_wrk() {
  local c=$1 url=$2 out
  if [ $# -ge 3 ]; then
    out=$(wrk -t2 -c"$c" -d"$DURATION" --latency -H "$3" "$url")
  else
    out=$(wrk -t2 -c"$c" -d"$DURATION" --latency "$url")
  fi
  grep -q 'Non-2xx' <<<"$out" && die "non-2xx answers from $url: $out"
  awk '/^Requests\/sec:/{r=$2} /^Transfer\/sec:/{t=$2; u=t; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+$/, "", t);
       m = (u == "GB" ? 1024 : u == "MB" ? 1 : u == "KB" ? 1/1024 : 1/1048576); tm = t * m}
       END{printf "%.0f %.1f\n", r, tm}' <<<"$out"
}
ROWS=()
measure() { # NAME CONNECTIONS URL [HEADER]
  local name=$1; shift
  log "wrk -c$1 $DURATION: $name"
  local r; r=$(run_wrk "$@")
  ROWS+=("$name $r")
  printf -v "R_$(tr -c 'a-z0-9\n' _ <<<"$name" | head -c 40)" %s "$r"
}
get() { local v="R_$(tr -c 'a-z0-9\n' _ <<<"$1" | head -c 40)"; echo "${!v}"; }

measure "nginx small" 64 "http://127.0.0.1:$NG_PORT$SMALL"
measure "serve small" 64 "http://127.0.0.1:$PORT_plain$SMALL"
measure "serve+auth small" 64 "http://127.0.0.1:$PORT_auth$SMALL" "$AUTH"
measure "nginx blob" 4 "http://127.0.0.1:$NG_PORT$BLOB"
measure "serve blob" 4 "http://127.0.0.1:$PORT_plain$BLOB"
measure "nginx+tls small" 64 "https://127.0.0.1:$NG_TLS_PORT$SMALL"
measure "serve+tls small" 64 "https://127.0.0.1:$PORT_tls$SMALL"
measure "nginx+tls blob" 4 "https://127.0.0.1:$NG_TLS_PORT$BLOB"
measure "serve+tls blob" 4 "https://127.0.0.1:$PORT_tls$BLOB"
measure "serve small c256" 256 "http://127.0.0.1:$PORT_plain$SMALL"
measure "serve blob c256" 256 "http://127.0.0.1:$PORT_plain$BLOB"
RSS_KIB=$(awk '/^VmHWM:/{print $2}' "/proc/$PID_plain/status")

# ---------------------------------------------------------------- report
echo
echo "serve vs nginx, wrk on loopback, $DURATION per row, $(nproc) CPUs, blob $BLOB_SIZE"
printf '| %-18s | %10s | %10s |\n' run req/s MiB/s
printf '|%s|%s|%s|\n' "--------------------" "------------" "------------"
for row in "${ROWS[@]}"; do
  set -- $row
  n=$#; r=${!n}; n=$((n - 1)); rq=${!n}; name=${row% * *}
  printf '| %-18s | %10s | %10s |\n' "$name" "$rq" "$r"
done
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ printf "%.2f", (b > 0 ? a / b : 0) }'; }
target() { # WHAT RATIO MIN
  awk -v w="$1" -v r="$2" -v m="$3" 'BEGIN{ printf "%-6s %s >= %.1fx: %.2fx\n", (r >= m ? "MET" : "MISSED"), w, m, r }'
}
first() { set -- $1; echo "$1"; }
second() { set -- $1; echo "$2"; }
target "serve small-object req/s vs nginx" "$(ratio "$(first "$(get "serve small")")" "$(first "$(get "nginx small")")")" 0.8
target "serve $BLOB_SIZE blob MiB/s vs nginx (sendfile)" "$(ratio "$(second "$(get "serve blob")")" "$(second "$(get "nginx blob")")")" 0.9
target "serve+TLS small-object req/s vs nginx+TLS" "$(ratio "$(first "$(get "serve+tls small")")" "$(first "$(get "nginx+tls small")")")" 0.7
target "serve+TLS blob MiB/s vs nginx+TLS" "$(ratio "$(second "$(get "serve+tls blob")")" "$(second "$(get "nginx+tls blob")")")" 0.7
target "serve with Basic auth req/s vs serve without" "$(ratio "$(first "$(get "serve+auth small")")" "$(first "$(get "serve small")")")" 0.8
awk -v k="$RSS_KIB" 'BEGIN{ r = k / 1024; printf "%-6s serve peak RSS <= 64 MiB at 256 connections (small objects, then the blob): %.1f MiB\n", (r <= 64 ? "MET" : "MISSED"), r }'
