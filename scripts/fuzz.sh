#!/usr/bin/env bash
# Builds the fuzz preset (clang, libFuzzer, ASan + UBSan) and runs every
# fuzz target for SECONDS (default 60) on a copy of its seed corpus
# (fuzz/corpus/<target>, plus fuzz/regressions/<target>), one target after
# the other. Prints one JSON line:
#   {"seconds_per_target":S,"total_execs":N,"crashes":C,
#    "targets":{"<target>":{"execs":N,"crashes":C,"corpus":K,"seconds":T},...}}
# where corpus is the size of the corpus at the end (seeds plus what the run
# found). A crash's input is kept in build/fuzz/artifacts/<target>/ and the
# script exits 1; copy it to fuzz/regressions/<target>/ once fixed, so every
# build replays it (ctest label fuzz_corpus).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
all_targets=(event_parser mind_row learner_config http_router checkpoint)
targets=("${@:-${all_targets[@]}}")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
artifacts=build/fuzz/artifacts
json_targets=""
total_execs=0
total_crashes=0
status=0
for t in "${targets[@]}"; do
  bin=build/fuzz/fuzz/${t}_fuzz
  [ -x "$bin" ] || { echo "no fuzz target $t" >&2; exit 2; }
  mkdir -p "$work/$t" "$artifacts/$t"
  cp fuzz/corpus/"$t"/* "$work/$t"/
  [ -d fuzz/regressions/"$t" ] && cp fuzz/regressions/"$t"/* "$work/$t"/
  log=$work/$t.log
  start_ms=$(($(date +%s%N) / 1000000))
  rc=0
  # Inputs longer than 64 KiB add little here and slow every target down.
  "$bin" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$t/" "$work/$t" >"$log" 2>&1 || rc=$?
  elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  execs=${execs:-0}
  crashes=0
  if [ "$rc" -ne 0 ]; then
    crashes=1
    status=1
    echo "== $t crashed (exit $rc); input in $artifacts/$t/" >&2
    grep -E "ERROR|runtime error|FUZZ_CHECK|SUMMARY|Test unit written" "$log" \
      | head -20 >&2 || true
  fi
  corpus=$(find "$work/$t" -type f | wc -l)
  total_execs=$((total_execs + execs))
  total_crashes=$((total_crashes + crashes))
  json_targets+="${json_targets:+,}\"$t\":{\"execs\":$execs,\"crashes\":$crashes,\"corpus\":$corpus,\"seconds\":$((elapsed_ms / 1000)).$((elapsed_ms % 1000 / 100))}"
done
echo "{\"seconds_per_target\":$seconds,\"total_execs\":$total_execs,\"crashes\":$total_crashes,\"targets\":{$json_targets}}"
exit $status
