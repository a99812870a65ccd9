#!/usr/bin/env bash
# Snapshots of hyper-vmm (docs/snapshots.md), with the real guest kernel and the test
# init counting in its memory (test_action=counter): run inside tests/rig/run where the
# host has no hardware KVM (CTest does that). Usage: snapshot.sh BUILD_DIR
#
#   restore   SIGUSR2 saves the VM and stops it; --restore resumes it with another disk
#             and vsock socket: the count goes on from where it was (no reboot), the new
#             disk is read, the rng answers, the guest's exit status comes through
#   resume    a snapshot without --snapshot-stop: the VM goes on to its end; then two
#             restores of that one file run at once and both finish
#   refused   a damaged, truncated or foreign file, and a restore with other devices,
#             end with a clear error and status 2; so do contradictory options
set -uo pipefail

build=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
kernel=${HYPER_KERNEL_DIR:-$("$repo/kernel/build" --print-dir)}/vmlinux
vmm="$build/cli/hyper-vmm"
initrd="$build/tests/test-initrd.cpio"
work=$(mktemp -d)
trap 'pkill -KILL -f "$work" 2>/dev/null; rm -rf "$work"' EXIT
step=setup

fail() {
  echo "FAIL [snapshot/$step]: $*" >&2
  for f in "$work"/*.out "$work"/*.err; do
    [ -s "$f" ] && { echo "--- $f ---" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}

# boot NAME ARGS...: the counting guest in the background with a disk, rng and vsock; its
# console in $work/NAME.out, stderr in NAME.err, pid in $pid.
boot() {
  local name=$1
  shift
  "$vmm" --kernel "$kernel" --initrd "$initrd" --disk "$work/first.img" --rng \
    --vsock "cid=3,socket=$work/$name.vsock" --cmdline "test_action=counter test_count_to=40 loglevel=1" "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
}

# wait_for_count NAME N: until the guest NAME counted to N (2 minutes at most).
wait_for_count() {
  for _ in $(seq 1200); do
    grep -qw "count $2" "$work/$1.out" && return 0
    kill -0 "$pid" 2>/dev/null || fail "the VMM ended before counting to $2"
    sleep 0.1
  done
  fail "the guest did not count to $2 within 2 minutes"
}

# restore NAME SNAPSHOT [ARGS...]: resumes SNAPSHOT in the foreground (status in $rc).
restore() {
  local name=$1 snap=$2
  shift 2
  timeout 120 "$vmm" --restore "$snap" --disk "$work/second.img" --rng --vsock "cid=4,socket=$work/$name.vsock" "$@" \
    >"$work/$name.out" 2>"$work/$name.err"
  rc=$?
}

# counts_complete FILE...: the files' count lines, joined (the console ends lines with
# CR LF), are exactly 1..40, in order; if not, says what they were. (The guest kernel
# prints only emergencies, loglevel=1: a kernel message in the middle of a count line,
# after the guest's clock jumped over a pause, would break it.)
counts_complete() {
  local counts
  counts=$(cat "$@" | tr -d '\r' | grep -o 'count [0-9]*$' | cut -d' ' -f2 | tr '\n' ' ')
  [ "$counts" = "$(seq -s' ' 1 40) " ] && return 0
  echo "counts seen: $counts" >&2
  return 1
}

printf 'first-disk\n' >"$work/first.img" && truncate -s 1M "$work/first.img"
printf 'second-disk\n' >"$work/second.img" && truncate -s 1M "$work/second.img"

step=restore
boot saved --snapshot "$work/vm.snap" --snapshot-stop
wait_for_count saved 10
kill -USR2 "$pid"
wait "$pid"
rc=$?
[ "$rc" -eq 0 ] || fail "the VMM saving the snapshot exited with $rc, expected 0"
grep -q "saved a snapshot to $work/vm.snap in [0-9]* ms" "$work/saved.err" || fail "no 'saved a snapshot' on stderr"
[ -s "$work/vm.snap" ] || fail "no snapshot file"
grep -q "vda says" "$work/saved.out" && fail "the saved VM ran to its end instead of stopping"
restore restored "$work/vm.snap"
[ "$rc" -eq 0 ] || fail "the restored VM exited with $rc, expected the guest's 0"
grep -q "hyper-test-init: ready" "$work/restored.out" && fail "the restored guest booted again"
counts_complete "$work/saved.out" "$work/restored.out" || fail "the count did not go on from where it stopped"
grep -q "vda says second-disk" "$work/restored.out" || fail "the restored guest did not read the disk it was given"
grep -q "hwrng_read=32" "$work/restored.out" || fail "the restored guest's virtio-rng did not answer"
grep -q "exit 0" "$work/restored.out" || fail "the restored guest did not end"

step=resume
boot running --snapshot "$work/mid.snap"
wait_for_count running 10
kill -USR2 "$pid"
wait "$pid"
rc=$?
[ "$rc" -eq 0 ] || fail "the VM that was saved and resumed exited with $rc"
counts_complete "$work/running.out" || fail "the VM lost its count across the snapshot"
grep -q "vda says first-disk" "$work/running.out" || fail "the resumed VM did not keep its disk"
[ -s "$work/mid.snap" ] || fail "no snapshot file"
restore twin1 "$work/mid.snap" & twin1=$!
restore twin2 "$work/mid.snap"
rc2=$rc
wait "$twin1"
rc1=$?
[ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ] || fail "two restores of one snapshot exited with $rc1 and $rc2"
for twin in twin1 twin2; do
  grep -q "vda says second-disk" "$work/$twin.out" || fail "$twin did not finish"
done

step=refused
expect_refused() {  # expect_refused WHAT MESSAGE: the last restore failed with status 2 and MESSAGE
  [ "$rc" -eq 2 ] || fail "$1: status $rc, expected 2"
  grep -q -- "$2" "$work/refused.err" || fail "$1: stderr lacks '$2'"
}
cp "$work/vm.snap" "$work/damaged.snap"
printf '\xff' | dd of="$work/damaged.snap" bs=1 seek=1200 conv=notrunc status=none  # inside a state section
restore refused "$work/damaged.snap"
expect_refused "a damaged snapshot" "checksum does not match"
head -c 100000 "$work/vm.snap" >"$work/truncated.snap"
restore refused "$work/truncated.snap"
expect_refused "a truncated snapshot" "truncated"
head -c 8192 /dev/urandom >"$work/foreign.snap"
restore refused "$work/foreign.snap"
expect_refused "a foreign file" "not a hyper snapshot"
timeout 60 "$vmm" --restore "$work/vm.snap" --rng >"$work/refused.out" 2>"$work/refused.err"
rc=$?
expect_refused "other devices" "give the same devices"
timeout 60 "$vmm" --restore "$work/vm.snap" --kernel "$kernel" >"$work/refused.out" 2>"$work/refused.err"
rc=$?
expect_refused "--restore with --kernel" "cannot go with it"
timeout 60 "$vmm" --kernel "$kernel" --snapshot-stop >"$work/refused.out" 2>"$work/refused.err"
rc=$?
expect_refused "--snapshot-stop alone" "needs --snapshot"
echo "snapshot: all cases passed"
