# What the end-to-end scripts share (tests/e2e/run.sh, tests/e2e/networks.sh): a
# scratch state root, `h` to run hyper with a time bound, and the expectations.
# Sourced with $1 = BUILD_DIR and $2 = GROUP.
set -uo pipefail

build=$1 group=$2
repo=$(cd "$(dirname "$0")/../.." && pwd)
hyper="$build/cli/hyper"
work=$(mktemp -d)
export HYPER_ROOT="$work/state"
export HYPER_KERNEL=${HYPER_KERNEL:-${HYPER_KERNEL_DIR:-$("$repo/kernel/build" --print-dir)}/vmlinux}
trap 'pkill -KILL -f "$HYPER_ROOT" 2>/dev/null; rm -rf "$work"' EXIT

fail() {
  echo "FAIL [$group/$step]: $*" >&2
  echo "--- stdout ---" >&2; tail -n 30 "$work/out" >&2 2>/dev/null
  echo "--- stderr ---" >&2; tail -n 30 "$work/err" >&2 2>/dev/null
  for log in "$HYPER_ROOT"/containers/*/console.log; do
    [ -s "$log" ] && { echo "--- $log ---" >&2; tail -n 20 "$log" >&2; }
  done
  # How each container ended (status, exit code, error), whether the VMM broke its filter, and
  # what its monitor said.
  for file in "$HYPER_ROOT"/containers/*/state.json "$HYPER_ROOT"/containers/*/seccomp-violation.log \
      "$HYPER_ROOT"/containers/*/monitor.log; do
    [ -s "$file" ] && { echo "--- $file ---" >&2; tail -c 1500 "$file" >&2; echo >&2; }
  done
  # A script's own diagnostics, if it has any.
  ! declare -F on_fail >/dev/null || on_fail >&2
  exit 1
}

step=setup
# h ARGS...: runs hyper with a time bound; stdout/stderr in $work/out and $work/err, status in $rc.
h() {
  echo "[$group/$step +${SECONDS}s] hyper $*" >&2
  timeout 150 "$hyper" "$@" >"$work/out" 2>"$work/err" </dev/null
  rc=$?
  [ "$rc" -ne 124 ] || fail "hyper $* did not finish within 150 s"
}
expect_rc() { [ "$rc" -eq "$1" ] || fail "exit status $rc, expected $1"; }
expect_out() { grep -q -- "$1" "$work/out" || fail "stdout lacks '$1'"; }
expect_out_exactly() { [ "$(cat "$work/out")" = "$1" ] || fail "stdout is '$(cat "$work/out")', expected '$1'"; }
expect_err() { grep -q -- "$1" "$work/err" || fail "stderr lacks '$1'"; }

load_busybox() {
  "$repo/tests/images/make-test-image" "$@" "$work/busybox.tar" >/dev/null || fail "make-test-image failed"
  h load -i "$work/busybox.tar"
  expect_rc 0
  expect_out "Loaded image: busybox:latest"
}

# vmm_threads PID: "NAME SECCOMP-MODE" of each of the process's threads, sorted, in $threads
vmm_threads() {
  [ -n "$1" ] && [ -d "/proc/$1/task" ] || fail "no running VMM process '$1'"
  threads=$(for task in /proc/"$1"/task/*; do
    echo "$(sed -n 's/^Name:\t//p' "$task/status") $(sed -n 's/^Seccomp:\t//p' "$task/status")"
  done | sort)
}

# wait_for COMMAND...: retries for up to 60 s
wait_for() {
  for _ in $(seq 600); do "$@" && return 0; sleep 0.1; done
  return 1
}

