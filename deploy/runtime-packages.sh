#!/usr/bin/env bash
# Prints, one per line, the Debian packages a built cfrec binary needs at run
# time: the packages that own the shared libraries it links directly (apt
# brings their own dependencies), plus the BLAS the build machine selected.
# The container's runtime stage installs exactly these (deploy/Dockerfile).
#   deploy/runtime-packages.sh build/release/app/cfrec
# Fails, naming the library, when a linked library belongs to no package.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 BINARY" >&2; exit 2; }
binary=$1
[ -x "$binary" ] || { echo "$0: $binary: not an executable" >&2; exit 2; }

# owner PATH: the package that owns PATH, also under merged /usr.
owner() {
  local path=$1 candidate
  for candidate in "$path" "/usr$path" "$(realpath "$path")" "/usr$(realpath "$path")"; do
    if dpkg-query -S "$candidate" >/dev/null 2>&1; then
      dpkg-query -S "$candidate" 2>/dev/null | head -n1 | cut -d: -f1
      return 0
    fi
  done
  return 1
}

needed=$(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
resolved=$(ldd "$binary")
declare -A packages=()
status=0
for lib in $needed; do
  path=$(awk -v lib="$lib" '$1 == lib && $3 ~ /^\// {print $3}' <<<"$resolved" | head -n1)
  if [ -z "$path" ]; then
    echo "$0: $lib: not found by the loader" >&2
    status=1
    continue
  fi
  if ! package=$(owner "$path"); then
    echo "$0: $lib ($path): no Debian package owns it" >&2
    status=1
    continue
  fi
  packages[$package]=1
done
# LibTorch calls BLAS through Debian's alternatives: keep the optimised one
# when the build machine has it (scripts/dev.sh installs it).
for blas in libopenblas0-pthread; do
  if dpkg-query -W -f='${Status}' "$blas" 2>/dev/null | grep -q "install ok installed"; then
    packages[$blas]=1
  fi
done
[ "$status" -eq 0 ] || exit "$status"
printf '%s\n' "${!packages[@]}" | sort
