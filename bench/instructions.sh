#!/usr/bin/env bash
# Instructions per chat turn of one server build, counted by callgrind: a count a loaded machine
# does not change, for comparing two builds where the harness's CPU figures are within noise.
#
#   bench/instructions.sh BINARY [CONFIG_DIR] [TURNS]
#
# Starts BINARY under `valgrind --tool=callgrind` in CONFIG_DIR (its configuration; default: this
# checkout), warms it up, then counts TURNS (300) turns of each bench message with the counters
# zeroed before each, and prints instructions per turn. Needs valgrind and curl.
set -euo pipefail
binary=$(realpath "$1")
dir=${2:-$(dirname "$0")/..}
turns=${3:-300}
port=$((20000 + RANDOM % 20000))
out=$(mktemp -d)
cd "$dir"
PORT=$port LOG_LEVEL=warn RATE_LIMIT_CHAT=0 CONFIG_WATCH=false \
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" "$binary" serve >/dev/null 2>"$out/valgrind.log" &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 240); do curl -s -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.5; done
send() {
  for i in $(seq "$2"); do
    curl -s -o /dev/null -H 'content-type: application/json' \
      -d "{\"message\":\"$1\",\"session_id\":\"cg-$((i % 16))\"}" "http://127.0.0.1:$port/api/chat"
  done
}
for message in "status of the registry" "show me all droplets"; do send "$message" 20; done
for message in "status of the registry" "show me all droplets"; do
  callgrind_control -z "$pid" >/dev/null 2>&1
  send "$message" "$turns"
  callgrind_control -d "$message" "$pid" >/dev/null 2>&1
  dump=$(grep -l "^desc: Trigger: dump $message" "$out"/cg.* | head -1)
  total=$(grep -m1 '^summary:' "$dump" | awk '{print $2}')
  echo "$message: $((total / turns)) instructions per turn ($turns turns)"
done
