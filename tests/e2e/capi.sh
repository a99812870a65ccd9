#!/usr/bin/env bash
# End-to-end test of the C ABI (capi/): its C example, linked against libhyper-vmm.so
# alone, boots the real guest kernel to the test init and prints the end and the timings,
# passes the guest's exit status on, stops a running guest from a second thread, reports a
# guest panic with the console's tail, and reports the library's errors. Run inside
# tests/rig/run on hosts without hardware KVM (CTest does that). Usage: capi.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" capi

example="$build/capi/capi_boot_example"
initrd="$build/tests/test-initrd.cpio"
[ -x "$example" ] || fail "no $example (ninja capi_boot_example)"
[ -f "$initrd" ] || fail "no $initrd (ninja test-initrd)"

# boot ARGS...: runs the example with a time bound; stdout/stderr in $work/out and
# $work/err, status in $rc. A guest that triple-faulted inside the nested VM runs once
# more: the emulated SVM under it faults now and then on its own (tests/rig/README.md).
boot() {
  local attempt
  for attempt in 1 2; do
    echo "[$group/$step] capi_boot_example $*" >&2
    timeout 150 "$example" "$@" >"$work/out" 2>"$work/err" </dev/null
    rc=$?
    [ "$rc" -ne 124 ] || fail "capi_boot_example $* did not finish within 150 s"
    if ((attempt == 1)) && [ "${HYPER_RIG:-}" = nested ] && grep -q "boot: exit: triple fault" "$work/err"; then
      echo "capi.sh: [$step] the guest triple-faulted in the nested VM: running it once more" >&2
      continue
    fi
    return 0
  done
}

step=linkage  # a C program: the library and libc, no C++ runtime of its own
needed=$(objdump -p "$example" | awk '$1 == "NEEDED" { print $2 }')
grep -qx "libhyper-vmm.so.1" <<<"$needed" || fail "the example does not load libhyper-vmm.so.1: $needed"
! grep -q "libstdc++" <<<"$needed" || fail "the example links the C++ runtime itself: $needed"

step=usage
boot
expect_rc 2
expect_err "usage: boot --kernel KERNEL"
expect_err "--kernel is required"
boot --kernel "$HYPER_KERNEL" --bogus x
expect_rc 2
expect_err "--bogus: unknown option"
boot --kernel
expect_rc 2
expect_err "needs a value"

step=boot  # PVH to the test init, its console on stdout, the VMM's log on stderr
boot --kernel "$HYPER_KERNEL" --initrd "$initrd"
expect_rc 0
expect_out "hyper-test-init: ready"
expect_out "hyper-test-init: exit 0"
expect_err "boot: exit: guest exit, status 0: the guest exited with status 0"
expect_err "hyper-vmm: guest init reached user space after"
grep -E -q '^boot: timings: first_kvm_run_ms=[0-9.]+ boot_timer_ms=[0-9.]+ exit_ms=[0-9.]+$' "$work/err" ||
  fail "no complete timings line"

step=exit-status  # the byte the guest writes to the exit port is the program's status
boot --kernel "$HYPER_KERNEL" --initrd "$initrd" --cmdline "test_exit=42"
expect_rc 42
expect_out "hyper-test-init: exit 42"
expect_err "boot: exit: guest exit, status 42"

step=stop  # hyper_vmm_stop() from another thread ends a guest still booting
boot --kernel "$HYPER_KERNEL" --initrd "$initrd" --stop-after 30
expect_rc 143
expect_err "boot: exit: stopped, status 143: stopped by hyper_vmm_stop"
expect_err "boot: timings: first_kvm_run_ms="
! grep -q "hyper-test-init: exit" "$work/out" || fail "the guest ran to its end: the stop came too late to test"

step=panic  # a guest that dies is a run that ended: its reason, status 1 and the console's tail
boot --kernel "$HYPER_KERNEL" --initrd "$initrd" --cmdline "test_action=panic"
expect_rc 1
expect_err "boot: exit: guest kernel panic, status 1: the guest kernel panicked"
expect_err "boot: last console output:"
expect_err "Kernel panic - not syncing"

step=bad-kernel  # the library's errors: a code's name and the detailed message, status 1
boot --kernel /etc/hostname --initrd "$initrd"
expect_rc 1
expect_err "boot: create: bad kernel or initrd image: "
expect_err "neither an ELF vmlinux nor a bzImage"
boot --kernel "$work/does-not-exist"
expect_rc 1
expect_err "boot: create: not found: "
expect_err "No such file or directory"

echo "PASS [capi]"
