#!/usr/bin/env bash
# On a PVM host (no VT-x/SVM), a stock guest kernel dies in KVM's instruction emulator;
# hyper-vmm must end non-zero and explain why, naming the RIP. Runs natively, not in the
# rig. On a host whose KVM is not PVM, or that gives this machine no /dev/kvm at all, the
# situation cannot arise: exit 77 (CTest: skip), which tests/README.md documents as the one
# opt-out of this test.
set -uo pipefail
build=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
if [ ! -d /sys/module/kvm_pvm ]; then
  echo "not a PVM host: this test applies only where /dev/kvm is served by kvm_pvm"
  exit 77
fi
if [ ! -e /dev/kvm ]; then
  echo "no /dev/kvm on this machine (the PVM host module is loaded, but no device was given to it): nothing to test"
  exit 77
fi
kernel_dir=${HYPER_KERNEL_DIR:-$("$repo/kernel/build" --print-dir)}
err=$(mktemp)
trap 'rm -f "$err"' EXIT
timeout 120 "$build/cli/hyper-vmm" --kernel "$kernel_dir/vmlinux" --initrd "$build/tests/test-initrd.cpio" \
  --console none 2>"$err"
rc=$?
cat "$err"
[ "$rc" -eq 1 ] || { echo "FAIL: exit status $rc, expected 1"; exit 1; }
grep -q "host KVM is PVM" "$err" || { echo "FAIL: no PVM notice in the start-up log"; exit 1; }
grep -q "KVM internal error.*at RIP 0x" "$err" || { echo "FAIL: error does not name the RIP"; exit 1; }
grep -q "CONFIG_PVM_GUEST" "$err" || { echo "FAIL: error does not explain PVM"; exit 1; }
echo "PASS [pvm-explains]"
