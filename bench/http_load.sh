#!/usr/bin/env bash
# HTTP load test of GET /v1/recommendations with wrk on loopback, for random
# known users, printing one JSON line as its last output.
#
# Two targets:
#   --mode serve      (default) the whole `cfrec serve`: a synthetic
#                     MIND-like log (cfrec synth, or bench/http_synth_log.py)
#                     is replayed into the embedded broker while the learner
#                     trains on it, and wrk queries the users of that log.
#   --mode synthetic  the HTTP server alone over an in-memory random model
#                     (cfrec_http_bench_server): no broker, no learner;
#                     --serve-args go to it (e.g. "--stream-features off").
#
# Usage:
#   bench/http_load.sh [--mode serve|synthetic] [--build DIR] [--items 20000]
#       [--users 50000] [--dim 64] [--duration 20] [--connections 4]
#       [--wrk-threads 1] [--port 18080] [--impressions 400000] [--n 10]
#       [--serve-args "..."] [--shed-factors "2 4"] [--think-ms 25]
#       [--paced-rates "8000"] [--paced-factors "2 4 8"] [--p99-target-ms 5]
#       [--paced-threads 1] [--paced-reuse lifo|fifo] [--search-repeats 1]
#       [--lock FILE]
#       [--p99-target-factor 3] [--client-sched fifo|normal]
#       [--client-priority 1]
#
# --lock FILE: hold an flock on FILE while the load runs (not while the
# service starts and replays its log), so builds sharing FILE wait.
#
# --paced-factors: the shedding figure (bench/http_paced.py): R0 is the
# highest rate held within the latency objective, --p99-target-factor times
# the unloaded p99 when given (else the fixed --p99-target-ms); the load
# tool runs under SCHED_FIFO unless --client-sched normal, at priority
# --client-priority (1; give one above --http-io-realtime-priority).
#
# --shed-factors: after the run above, whose rate is taken as the
# sustainable rate R0, load-shedding phases (bench/http_shed.py): a paced
# probe alone, the saturated rate (wrk closed-loop, 64 connections), then
# wrk offering k x R0 for each factor k (connections paced by --think-ms)
# with the probe alongside; the last line is then the shedding figures (the
# line above it the closed-loop run).
#
# Defaults: 20,000 items, d = 64, 4 connections for 20 s (on 2 cores more
# connections only queue: latency ~ connections / throughput). Record the
# printed line in docs/BENCHMARKS.md. Needs wrk, curl and python3.
set -euo pipefail

mode=serve
post_ts_ms=1573568100000
build=build/release
items=20000
users=50000
impressions=400000
dim=64
duration=20
connections=4
wrk_threads=1
port=18080
serve_args=""
n=10
shed_factors=""
think_ms=10
paced_rates=""
paced_factors=""
p99_target_ms=5
paced_threads=1
paced_reuse=lifo
search_repeats=1
lock_file=""
p99_target_factor=0
client_sched=fifo
client_priority=1

while [[ $# -gt 0 ]]; do
  case "$1" in
    --mode) mode="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --items) items="$2"; shift 2 ;;
    --users) users="$2"; shift 2 ;;
    --impressions) impressions="$2"; shift 2 ;;
    --dim) dim="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --wrk-threads) wrk_threads="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --serve-args) serve_args="$2"; shift 2 ;;
    --n) n="$2"; shift 2 ;;
    --shed-factors) shed_factors="$2"; shift 2 ;;
    --think-ms) think_ms="$2"; shift 2 ;;
    --paced-rates) paced_rates="$2"; shift 2 ;;
    --paced-factors) paced_factors="$2"; shift 2 ;;
    --p99-target-ms) p99_target_ms="$2"; shift 2 ;;
    --paced-threads) paced_threads="$2"; shift 2 ;;
    --paced-reuse) paced_reuse="$2"; shift 2 ;;
    --search-repeats) search_repeats="$2"; shift 2 ;;
    --lock) lock_file="$2"; shift 2 ;;
    --p99-target-factor) p99_target_factor="$2"; shift 2 ;;
    --client-sched) client_sched="$2"; shift 2 ;;
    --client-priority) client_priority="$2"; shift 2 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d -t cfrec-http-load.XXXXXX)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    # SIGKILL, not SIGTERM: the data directory is thrown away, and a
    # graceful stop would first drain what the embedded broker still holds
    # of the replay (up to 30 s).
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

base="http://127.0.0.1:${port}"
users_file="$work/users.txt"

case "$mode" in
  synthetic)
    bin="$build/server/cfrec_http_bench_server"
    [[ -x "$bin" ]] || { echo "missing $bin (build target cfrec_http_bench_server)" >&2; exit 1; }
    # shellcheck disable=SC2086
    "$bin" --http "127.0.0.1:${port}" --users "$users" --items "$items" \
      --dim "$dim" $serve_args >"$work/server.log" 2>&1 &
    server_pid=$!
    # The synthetic model names its users U0 .. U<users-1>.
    python3 -c "import sys; [print(f'U{i}') for i in range(int(sys.argv[1]))]" \
      "$users" >"$users_file"
    ;;
  serve)
    bin="$build/app/cfrec"
    [[ -x "$bin" ]] || { echo "missing $bin (build target cfrec)" >&2; exit 1; }
    # The log: `cfrec synth` (mind-like) where the binary has it, else the
    # Python generator beside this script (same format).
    behaviors=""
    if "$bin" synth --out "$work/log" --mode mind-like --ml-users "$users" \
        --ml-items "$items" --ml-impressions "$impressions" \
        >"$work/synth.log" 2>&1; then
      behaviors="$(find "$work/log" -name 'behaviors.tsv' | head -n1)"
    fi
    if [[ -z "$behaviors" ]]; then
      behaviors="$work/behaviors.tsv"
      python3 "$here/http_synth_log.py" --out "$behaviors" --users "$users" \
        --items "$items" --impressions "$impressions"
    fi
    # MIND behaviors.tsv: impression id, user id, time, history, impressions.
    cut -f2 "$behaviors" | sort -u >"$users_file"
    # Events POSTed during the phases are dated a minute before the log's
    # last impression: the live candidate pool is the items impressed
    # within 48 h of event time before the newest event, and a later date
    # would expire the log's items (a pool of the three POSTed ones).
    post_ts_ms="$(python3 - "$behaviors" <<'PY'
import calendar, sys, time
last = 0
with open(sys.argv[1]) as f:
    for line in f:
        t = calendar.timegm(time.strptime(line.split("\t")[2],
                                          "%m/%d/%Y %I:%M:%S %p"))
        last = max(last, t)
print(last * 1000 - 60000)
PY
)"
    # Known users only: wait (below) until the model has rows for most of
    # them, so the figures are not those of the cheap popularity fallback.
    want_users=$(( $(wc -l <"$users_file") * 95 / 100 ))
    # shellcheck disable=SC2086
    "$bin" serve --http "127.0.0.1:${port}" --data-dir "$work/data" \
      --replay "$behaviors" $serve_args >"$work/server.log" 2>&1 &
    server_pid=$!
    ;;
  *) echo "unknown mode: $mode" >&2; exit 2 ;;
esac

# Ready = state open and a first snapshot published (GET /readyz).
for _ in $(seq 1 600); do
  if curl -fsS "$base/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "server exited; log:" >&2; cat "$work/server.log" >&2; exit 1
  fi
  sleep 0.5
done
curl -fsS "$base/readyz" >/dev/null || { echo "server never became ready" >&2; exit 1; }
if [[ -n "${want_users:-}" ]]; then
  for _ in $(seq 1 600); do
    # May be shed (503) while the replay saturates the machine: retry.
    have=$(curl -fsS "$base/v1/model" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["users"])' 2>/dev/null) || have=0
    [[ "$have" -ge "$want_users" ]] && break
    sleep 0.5
  done
fi

if [[ -n "$lock_file" ]]; then
  exec 9>>"$lock_file"
  flock 9
fi

if [[ -n "$paced_rates$paced_factors" ]]; then
  paced_bin="$build/server/cfrec_http_paced"
  [[ -x "$paced_bin" ]] || { echo "missing $paced_bin (build target cfrec_http_paced)" >&2; exit 1; }
  python3 "$here/http_paced.py" --tool "$paced_bin" --port "$port" \
    --users-file "$users_file" --rates "$paced_rates" \
    --factors "$paced_factors" --p99-target-ms "$p99_target_ms" \
    --duration "$duration" --n "$n" --threads "$paced_threads" \
    --reuse "$paced_reuse" \
    --search-repeats "$search_repeats" --post-ts-ms "$post_ts_ms" \
    --p99-target-factor "$p99_target_factor" --client-sched "$client_sched" \
    --client-priority "$client_priority"
  exit 0
fi

model_before="$(curl -fsS "$base/v1/model")"
wrk_out="$(wrk -t"$wrk_threads" -c"$connections" -d"${duration}s" --latency \
  -s "$here/http_users.lua" "$base" -- "$users_file" "$n")"
model_after="$(curl -fsS "$base/v1/model")"
echo "$wrk_out" >&2
# Share of the queried users answered by the popularity fallback (unknown to
# the model), from a fixed sample of 200.
fallback_share="$(BASE="$base" USERS_FILE="$users_file" N="$n" python3 - <<'PY'
import json, os, random, urllib.parse, urllib.request
users = [l.strip() for l in open(os.environ["USERS_FILE"]) if l.strip()]
sample = random.Random(7).sample(users, min(200, len(users)))
fallback = 0
for u in sample:
    url = (os.environ["BASE"] + "/v1/recommendations?user_id=" +
           urllib.parse.quote(u, safe="") + "&n=" + os.environ["N"])
    with urllib.request.urlopen(url) as r:
        fallback += json.load(r)["fallback"] == "popularity"
print(fallback / len(sample))
PY
)"

MODE="$mode" CONNECTIONS="$connections" WRK_THREADS="$wrk_threads" \
  USERS_FILE="$users_file" MODEL_BEFORE="$model_before" \
  MODEL_AFTER="$model_after" WRK_OUT="$wrk_out" NPROC="$(nproc)" \
  FALLBACK_SHARE="$fallback_share" \
  python3 - <<'PY'
import json, os
wrk_line = [l for l in os.environ["WRK_OUT"].splitlines() if l.startswith("{")][-1]
result = json.loads(wrk_line)
before = json.loads(os.environ["MODEL_BEFORE"])
after = json.loads(os.environ["MODEL_AFTER"])
with open(os.environ["USERS_FILE"]) as f:
    known_users = sum(1 for line in f if line.strip())
out = {
    "bench": "http_recommendations",
    "mode": os.environ["MODE"],
    "items": after.get("items"),
    "candidate_pool": after.get("candidate_pool"),
    "dim": after.get("dim"),
    "users_queried": known_users,
    "fallback_share": float(os.environ["FALLBACK_SHARE"]),
    "connections": int(os.environ["CONNECTIONS"]),
    "wrk_threads": int(os.environ["WRK_THREADS"]),
    "cores": int(os.environ["NPROC"]),
    **result,
    "model_version_before": before.get("model_version"),
    "model_version_after": after.get("model_version"),
    "observed_samples_during": after["training"]["observed_samples"]
        - before["training"]["observed_samples"],
}
print(json.dumps(out))
PY

if [[ -n "$shed_factors" ]]; then
  sustainable="$(WRK_OUT="$wrk_out" python3 -c '
import json, os
print([json.loads(l) for l in os.environ["WRK_OUT"].splitlines() if l.startswith("{")][-1]["qps"])')"
  python3 "$here/http_shed.py" --port "$port" --users-file "$users_file" \
    --sustainable "$sustainable" \
    --lua "$here/http_users.lua" --factors "$shed_factors" \
    --think-ms "$think_ms" --duration "$duration" --n "$n" \
    --post-ts-ms "$post_ts_ms"
fi
