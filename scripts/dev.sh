#!/usr/bin/env bash
# The two commands of the README:
#   ./scripts/dev.sh serve [cfrec serve flags]   install, build, run the service
#   ./scripts/dev.sh test                        install, build, run all tests
# Both install missing Debian packages (root, Debian 12) and skip apt when
# nothing is missing; builds are incremental.
# CI (.ci/run) also runs:
#   ./scripts/dev.sh sanitize [asan] [tsan]      sanitizer builds and tests of
#                                                the modules without LibTorch
#   ./scripts/dev.sh fuzz [seconds]              every fuzz target for a few
#                                                seconds (scripts/fuzz.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: $0 serve [cfrec serve flags...] | test [ctest args...] | build | sanitize [asan] [tsan] | fuzz [seconds]" >&2
  exit 2
}
[ $# -ge 1 ] || usage
what=$1
shift

packages=(
  g++ cmake ninja-build pkg-config
  librdkafka-dev librocksdb-dev libtorch-dev libboost-dev
  nlohmann-json3-dev libgtest-dev libcli11-dev
  libopenblas0-pthread  # LibTorch's BLAS (Debian's reference BLAS otherwise): the MLP towers
  python3-torch  # not for the build or tests: bench/pytorch_baseline.py
  python3-matplotlib  # not for the build or tests: plots of bench/report.py, bench/stream_report.py
  python3-yaml  # tests/app/deploy_test.py reads deploy/'s compose file and manifests
  chromium  # the dashboard's browser test (tests/web)
)

# The fuzz preset's compiler and libFuzzer (dev.sh fuzz only).
fuzz_packages=(clang libclang-rt-14-dev)

# install_missing [PACKAGE...]: the given packages, or the build's.
install_missing() {
  local missing=()
  [ $# -ge 1 ] || set -- "${packages[@]}"
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  # Node.js and npm for web/ (the dashboard's npm packages): Debian's, unless
  # some Node.js with npm is installed already (its package may conflict
  # with Debian's npm).
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# web/node_modules as web/package-lock.json pins it (uPlot, embedded by the
# build; playwright-core, for the browser test); again when the lock changes.
npm_install() {
  local installed=web/node_modules/.package-lock.json
  if [ ! -f "$installed" ] || [ web/package-lock.json -nt "$installed" ]; then
    (cd web && npm ci --no-audit --no-fund)
  fi
}

build() {
  npm_install
  cmake --preset release >/dev/null
  cmake --build --preset release
}

# The asan and tsan presets build only the modules without LibTorch (see
# CMakePresets.json); tsan builds only the tests labelled "concurrent".
sanitize() {
  local preset
  for preset in "$@"; do
    case "$preset" in
      asan|tsan) ;;
      *) usage ;;
    esac
    echo "== $preset: configure" >&2
    cmake --preset "$preset" >/dev/null
    echo "== $preset: build" >&2
    cmake --build --preset "$preset"
    echo "== $preset: test" >&2
    ctest --preset "$preset"
  done
}

case "$what" in
  serve)
    install_missing
    build
    exec build/release/app/cfrec serve "$@"
    ;;
  test)
    install_missing
    build
    exec ctest --preset release "$@"
    ;;
  build)
    install_missing
    build
    ;;
  sanitize)
    install_missing
    [ $# -ge 1 ] || set -- asan tsan
    sanitize "$@"
    ;;
  fuzz)
    install_missing
    install_missing "${fuzz_packages[@]}"
    exec scripts/fuzz.sh "${1:-10}"
    ;;
  *) usage ;;
esac
