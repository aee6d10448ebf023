#!/usr/bin/env bash
# Checks a release binary is self-contained enough to copy to a remote host (issue "SSH roots"):
# no Swift runtime libraries, no RUNPATH into a toolchain, only the Debian runtime libraries the
# README names; then runs the README's demo with it. Usage: Tests/release-check.sh BINARY
set -uo pipefail
bin=${1:?usage: $0 BINARY}
cd "$(dirname "$0")/.."
passed=0 failed=0
check() { if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi; }

needed() {
  local libs bad
  libs=$(readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')
  # What a Debian/Ubuntu host provides with libssh-4 and libsqlite3-0 (libssl3 comes with libssh-4).
  bad=$(echo "$libs" | grep -vxE 'libsqlite3\.so\.0|libcrypto\.so\.3|libssh\.so\.4|libm\.so\.6|libstdc\+\+\.so\.6|libgcc_s\.so\.1|libc\.so\.6|ld-linux-x86-64\.so\.2' || true)
  if [ -n "$bad" ]; then echo "FAIL: $bin needs libraries a plain remote host lacks: $bad"; return 1; fi
  echo "ok: needs only $(echo $libs | tr '\n' ' ')"
}
runpath() {
  if readelf -d "$bin" | grep -E 'R(UN)?PATH' | grep -q '/opt/swift\|/usr/lib/swift'; then
    echo "FAIL: $bin carries a RUNPATH into the Swift toolchain"; return 1
  fi
  echo "ok: no RUNPATH into the toolchain"
}
runs() {
  if ! env -i PATH=/usr/bin:/bin "$bin" --version >/dev/null; then echo "FAIL: $bin --version does not run"; return 1; fi
  echo "ok: runs without the toolchain's environment"
}
demo() {
  local out
  if ! out=$(SWUNISON_BIN="$bin" profiles/demo.sh 2>&1); then echo "FAIL: the README demo failed: $out"; return 1; fi
  if ! diff -r /tmp/swunison-demo/a /tmp/swunison-demo/b >/dev/null; then echo "FAIL: demo replicas differ"; return 1; fi
  echo "ok: README demo synchronised both replicas"
}
check needed; check runpath; check runs; check demo
echo "release-check: $passed passed, $failed failed"
[ "$failed" = 0 ]
