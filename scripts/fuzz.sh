#!/usr/bin/env bash
# Builds the fuzz preset (clang, libFuzzer, ASan + UBSan) and runs every
# fuzz target for SECONDS (default 60) on a copy of its seed corpus
# (fuzz/corpus/<target>, plus fuzz/regressions/<target>), one target after
# the other. Prints one JSON line:
#   {"seconds_per_target":S,"total_execs":N,"crashes":C,"ooms":O,
#    "targets":{"<target>":{"execs":N,"crashes":C,"ooms":O,"corpus":K,
#                           "seconds":T},...}}
# where corpus is the size of the corpus at the end (seeds plus what the run
# found). A crash (ASan, UBSan, a failed FUZZ_CHECK, a hang) stops the
# target, keeps its input in build/fuzz/artifacts/<target>/ and makes the
# script exit 1; copy it to fuzz/regressions/<target>/ once fixed, so every
# build replays it (ctest label fuzz_corpus). An input that makes a target
# allocate more than 256 MiB is counted in "ooms" (input kept, printed) and
# the target goes on: it is a finding to look at, not a failure of the run.
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
total_ooms=0
status=0
for t in "${targets[@]}"; do
  bin=build/fuzz/fuzz/${t}_fuzz
  [ -x "$bin" ] || { echo "no fuzz target $t" >&2; exit 2; }
  mkdir -p "$work/$t" "$artifacts/$t"
  cp fuzz/corpus/"$t"/* "$work/$t"/
  [ -d fuzz/regressions/"$t" ] && cp fuzz/regressions/"$t"/* "$work/$t"/
  # An allocation over 256 MiB is an out-of-memory finding, not a crash: it is
  # counted, its input kept, and the target restarts for the rest of its time.
  start_ms=$(($(date +%s%N) / 1000000))
  execs=0
  crashes=0
  ooms=0
  while :; do
    elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
    left=$((seconds - elapsed_ms / 1000))
    [ "$left" -gt 0 ] || break
    log=$work/$t.log
    rc=0
    # Inputs longer than 64 KiB add little here and slow every target down.
    "$bin" -max_total_time="$left" -max_len=65536 -timeout=10 \
      -malloc_limit_mb=256 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$artifacts/$t/" "$work/$t" >"$log" 2>&1 || rc=$?
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    execs=$((execs + ${n:-0}))
    [ "$rc" -ne 0 ] || break
    if grep -q "ERROR: libFuzzer: out-of-memory" "$log"; then
      ooms=$((ooms + 1))
      echo "== $t: out of memory; input in $artifacts/$t/" >&2
      grep -E "out-of-memory|^ +#[0-9]+ .* in cfrec::" "$log" | head -4 >&2 || true
      continue
    fi
    crashes=1
    status=1
    echo "== $t crashed (exit $rc); input in $artifacts/$t/" >&2
    grep -E "ERROR|runtime error|FUZZ_CHECK|SUMMARY|Test unit written" "$log" \
      | head -20 >&2 || true
    break
  done
  elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
  corpus=$(find "$work/$t" -type f | wc -l)
  total_execs=$((total_execs + execs))
  total_crashes=$((total_crashes + crashes))
  total_ooms=$((total_ooms + ooms))
  json_targets+="${json_targets:+,}\"$t\":{\"execs\":$execs,\"crashes\":$crashes,\"ooms\":$ooms,\"corpus\":$corpus,\"seconds\":$((elapsed_ms / 1000)).$((elapsed_ms % 1000 / 100))}"
done
echo "{\"seconds_per_target\":$seconds,\"total_execs\":$total_execs,\"crashes\":$total_crashes,\"ooms\":$total_ooms,\"targets\":{$json_targets}}"
exit $status
