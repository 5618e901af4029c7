#!/usr/bin/env bash
# The HTML reports in a real browser: wsprobe writes a run report (against a broken reference
# server, so failures and transcripts are there), a load report, a merged two-shard report and
# a capacity search;
# Debian's Chromium renders each headless to a PNG and dumps its DOM; then
# ci/html-check.py checks each page rendered (not blank: enough ink, several colours) and holds
# its elements (verdict, tables, SVG plots with their series, expandable transcripts).
#
#   bash ci/html-check.sh [--keep DIR]      # from the repository root; exits 1 on any problem
# --keep DIR copies the pages and screenshots there (docs/ holds one, from this script).
set -euo pipefail
cd "$(dirname "$0")/.."

keep=""
if [ "${1:-}" = "--keep" ]; then keep="$2"; fi

if ! command -v chromium >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >/dev/null
  $sudo_cmd apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
venv=target/html-venv
if ! "$venv/bin/python" -c 'import PIL' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet pillow
fi

# The debug builds `cargo test` made: the pages need real results, not fast ones (a slow
# generator's load run may come out `invalid`, which the page shows like any verdict).
cargo build --locked --quiet --bin wsprobe
cargo build --locked --quiet -p reference-server --bin reference-server
bin=target/debug
work=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# A run with failures: a server whose Pong is malformed and which sends no welcome.
"$bin/reference-server" --bind 127.0.0.1:0 --fault malformed-pong --fault no-welcome >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  url=$(sed -n 's/.*listening on \(ws:[^ ]*\).*/\1/p' "$work/server.log" | head -1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "the reference server did not start: $(cat "$work/server.log")" >&2; exit 1; }
timeout 300 "$bin/wsprobe" run --url "$url" --html "$work/run.html" --format json --output "$work/run.json" --no-progress >/dev/null || true
"$bin/wsprobe" report "$work/run.json" --html "$work/run-report.html" >/dev/null
cmp -s "$work/run-report.html" "$work/run.html" || { echo "wsprobe report and run --html differ on the same run" >&2; exit 1; }
kill "$server_pid"; server_pid=""

# A load run on the bundled server, and two shards of one against a shared server, merged.
timeout 60 "$bin/wsprobe" load --connections 20 --rate 2000 --duration 4s --ramp-up 0s --html "$work/load.html" --no-progress >/dev/null
"$bin/reference-server" --bind 127.0.0.1:0 --rate-limit 0 >"$work/server.log" 2>&1 &
server_pid=$!
url=""
for _ in $(seq 1 100); do
  url=$(sed -n 's/.*listening on \(ws:[^ ]*\).*/\1/p' "$work/server.log" | head -1)
  [ -n "$url" ] && break
  sleep 0.1
done
start=$(date -u -d '+3 seconds' +%Y-%m-%dT%H:%M:%SZ)
shard_pids=()
for i in 1 2; do
  timeout 60 "$bin/wsprobe" load --url "$url" --connections 10 --rate 1000 --duration 4s --ramp-up 0s --shard "$i/2" \
    --start-at "$start" --json "$work/s$i.json" --hdr-log "$work/s$i.hlog" --no-progress >/dev/null &
  shard_pids+=($!)
done
for pid in "${shard_pids[@]}"; do wait "$pid"; done
"$bin/wsprobe" merge "$work"/s1.json "$work"/s2.json "$work"/s1.hlog "$work"/s2.hlog --html "$work/merged.html" >/dev/null
kill "$server_pid"; server_pid=""
# `wsprobe report` renders saved results the same way.
"$bin/wsprobe" report "$work"/s1.json "$work"/s2.json "$work"/s1.hlog "$work"/s2.hlog --html "$work/report.html" >/dev/null
cmp -s "$work/report.html" "$work/merged.html" || { echo "wsprobe report and merge --html differ on the same files" >&2; exit 1; }

# A capacity search on the bundled server: short steps, a range the generator can drive.
timeout 120 "$bin/wsprobe" capacity --start-rate 250 --max-rate 1000 --step-duration 1s --slo 'p99<1s' \
  --html "$work/capacity.html" --no-progress >/dev/null

chrome_flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
  --disable-component-update --disable-sync --hide-scrollbars)
for page in run load merged capacity; do
  timeout 120 chromium "${chrome_flags[@]}" --user-data-dir="$work/profile-$page" --window-size=1200,1900 \
    --screenshot="$work/$page.png" "file://$work/$page.html" >/dev/null 2>&1
  timeout 120 chromium "${chrome_flags[@]}" --user-data-dir="$work/profile-$page" \
    --dump-dom "file://$work/$page.html" >"$work/$page.dom" 2>/dev/null
done
"$venv/bin/python" ci/html-check.py "$work"
if [ -n "$keep" ]; then
  mkdir -p "$keep"
  cp "$work"/{run,load,merged,capacity}.{html,png} "$keep"/
fi
