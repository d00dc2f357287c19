#!/usr/bin/env bash
# The whole-service crash soak with more kills than CI runs: `cfrec serve`
# killed with SIGKILL KILLS times (default 200) at random moments and at
# fail points, its store checked against the Kafka log after every kill
# (tests/app/crash_soak_test.cc). Builds what it needs into build/release.
# Prints the test's JSON line (kills, events lost and doubled, slowest
# readiness, ...); exits non-zero when an invariant broke.
#   scripts/soak.sh [KILLS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."

kills=${1:-200}
seed=${2:-20261130}
cmake --preset release >/dev/null
cmake --build --preset release --target serve_fault_test >&2
# Each kill takes about 2 s; allow 10 s.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! CFREC_SOAK_KILLS=$kills CFREC_SOAK_SEED=$seed \
  timeout $((kills * 10 + 120)) build/release/tests/app/serve_fault_test \
  --gtest_filter='CrashSoakTest.*' >"$log" 2>&1; then
  grep -v '^%3\| ERROR kafka: ' "$log" | tail -n 60 >&2
  exit 1
fi
grep '^{"' "$log"
