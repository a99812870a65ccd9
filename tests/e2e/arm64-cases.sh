# The arm64 boot cases, run by busybox sh inside the nested arm64 VM (tests/e2e/arm64.sh
# puts them there with tests/rig/arm64-run), in the payload directory: hyper-vmm, Image,
# test-initrd.cpio, test-peer and disk.img. Usage: sh arm64-cases.sh CASE...
# Prints "PASS [case]" or "FAIL [case]: why" for each; the status is the number failed.

failed=0
out=/tmp/out err=/tmp/err

vmm() {
  timeout 300 ./hyper-vmm --kernel ./Image --initrd ./test-initrd.cpio "$@" >"$out" 2>"$err"
  rc=$?
}
fail() {
  echo "FAIL [$case]: $*"
  echo "--- stdout ---"; tail -n 20 "$out"
  echo "--- stderr ---"; tail -n 20 "$err"
  failed=$((failed + 1))
  return 1
}
expect_rc() { [ "$rc" -eq "$1" ] || fail "exit status $rc, expected $1"; }
expect_out() { grep -q -- "$1" "$out" || fail "stdout lacks '$1'"; }
expect_err() { grep -q -- "$1" "$err" || fail "stderr lacks '$1'"; }

run_case() {
  case $1 in
    exit-status)  # the byte the test init writes to the exit page is the VMM's status
      vmm --timings --cmdline test_exit=42
      expect_rc 42 && expect_out "hyper-test-init: ready" && expect_out "hyper-test-init: exit 42" &&
        expect_err "guest init reached user space after" ;;
    smp-memory)  # 2 vCPUs (the second started by PSCI CPU_ON) and 256 MiB, with the GIC the
                 # nested VM's KVM offers: a GICv3, or on a GICv2 host (arm64.sh --gic 2) a GICv2
      vmm --cpus 2 --memory 256 --cmdline test_action=info
      expect_rc 0 && expect_out "hyper-test-init: cpus=2 " || return
      if grep -q GICv3 /proc/interrupts; then
        expect_out "GICv3: " || return
        ! grep -q "GICv2" "$err" || { fail "a GICv2 on a GICv3 host"; return; }
      else
        expect_err "no GICv3: the guest gets a GICv2" || return
        ! grep -q "GICv3: " "$out" || { fail "the guest found a GICv3 on a GICv2 host"; return; }
      fi
      kib=$(sed -n 's/.*mem_kib=\([0-9]*\).*/\1/p' "$out" | head -n1)
      [ -n "$kib" ] && [ "$kib" -gt $((256 * 1024 * 8 / 10)) ] && [ "$kib" -le $((256 * 1024)) ] ||
        fail "the guest sees '$kib' KiB, expected about 262144" ;;
    rng)  # virtio-rng, found through the device tree, and a seeded pool
      vmm --rng --cmdline test_action=rng
      expect_rc 0 && expect_out "hyper-test-init: rng_current=virtio_rng.0 hwrng_read=32 " &&
        expect_out "hyper-test-init: crng=ready" ;;
    blk)  # virtio-blk: the guest reads the host's file and writes its own; read-only stays so
      vmm --disk disk.img,serial=arm64-disk --cmdline test_action=blk
      expect_rc 0 && expect_out "hyper-test-init: blk read: hello from the host" &&
        expect_out "hyper-test-init: blk wrote guest.txt" || return
      before=$(sha256sum <disk.img)
      vmm --disk disk.img,ro --cmdline test_action=blk
      expect_rc 0 && expect_out "hyper-test-init: blk mounted read-only" && expect_out "hyper-test-init: blk write failed" || return
      [ "$(sha256sum <disk.img)" = "$before" ] || fail "a read-only disk was modified" ;;
    vsock)  # virtio-vsock both ways, 1 MiB echoed and verified in each
      sock=/tmp/vsock.sock
      timeout 300 ./test-peer unix-echo "${sock}_5678" >/tmp/listener 2>&1 &
      listener=$!
      timeout 300 ./hyper-vmm --kernel ./Image --initrd ./test-initrd.cpio --vsock "cid=3,socket=$sock" \
        --cmdline "test_action=vsock test_bytes=1048576" >"$out" 2>"$err" &
      vmm_pid=$!
      timeout 250 ./test-peer vsock-connect "$sock" 1234 1048576 >/tmp/dialer 2>&1 || fail "host -> guest: $(cat /tmp/dialer)"
      wait "$vmm_pid"
      rc=$?
      kill "$listener" 2>/dev/null  # when the guest never connected
      wait "$listener"
      expect_rc 0 && expect_out "hyper-test-init: vsock echo verified 1048576 bytes" || return
      grep -q "vsock echo verified 1048576 bytes" /tmp/dialer || fail "host -> guest: $(cat /tmp/dialer)" ;;
    seccomp)  # every thread of a running arm64 VMM carries its seccomp filter (2 vCPUs, the
              # disk's I/O thread, the event loop), and the guest runs to its end under them
      timeout 300 ./hyper-vmm --kernel ./Image --initrd ./test-initrd.cpio --cpus 2 --disk disk.img,ro \
        --cmdline "test_action=counter test_count_to=30" >"$out" 2>"$err" &
      vmm_pid=$!
      for _ in $(seq 600); do grep -q "hyper-test-init: count 5" "$out" && break; sleep 0.1; done
      threads=$(for task in /proc/$vmm_pid/task/*; do
        echo "$(sed -n 's/^Name:\t//p' "$task/status") $(sed -n 's/^Seccomp:\t//p' "$task/status")"
      done | sort | tr '\n' ',')
      wait "$vmm_pid"
      rc=$?
      expect_rc 0 && expect_out "hyper-test-init: count 30" || return
      [ "$threads" = "hyper-io0 2,hyper-vcpu0 2,hyper-vcpu1 2,hyper-vmm 2," ] ||
        fail "the VMM's threads and their seccomp modes: $threads" ;;
    panic)  # a kernel panic (panic=-1 resets through PSCI) ends the VMM with 1 and says so
      vmm --cmdline test_action=panic
      expect_rc 1 && expect_err "the guest kernel panicked" && expect_err "Kernel panic - not syncing" ;;
    bad-kernel)  # what is not an arm64 Image is refused before any guest runs
      timeout 60 ./hyper-vmm --kernel ./test-initrd.cpio >"$out" 2>"$err"
      rc=$?
      expect_rc 2 && expect_err "magic at offset 0x38" || return
      timeout 60 ./hyper-vmm --kernel ./Image --snapshot /tmp/snap >"$out" 2>"$err"
      rc=$?
      expect_rc 2 && expect_err "not supported on this CPU architecture" ;;
    *) fail "unknown case" ;;
  esac
}

for case in "$@"; do
  start=$(cut -d' ' -f1 /proc/uptime)
  if run_case "$case"; then echo "PASS [$case] (from ${start}s to $(cut -d' ' -f1 /proc/uptime)s of the VM's uptime)"; fi
done
exit "$failed"
