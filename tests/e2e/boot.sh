#!/usr/bin/env bash
# End-to-end boot tests: each case boots the real guest kernel in hyper-vmm and asserts
# on its console, exit status and error messages. Run inside tests/rig/run on hosts
# without hardware KVM (CTest does that). Usage: boot.sh BUILD_DIR CASE...
# Several cases run one after the other in the same (nested) VM, each in a process of
# its own; the status is 0 when all passed.
set -uo pipefail

# A case ends with $nested_fault when its guest triple-faulted inside the nested VM: the
# emulated SVM under it faults now and then on its own (tests/rig/README.md), so such a
# case runs once more, and says so; a second fault fails it.
nested_fault=75
if (($# > 2)); then
  build=$1 failed=()
  shift
  for case in "$@"; do
    "$0" "$build" "$case"
    rc=$?
    if ((rc == nested_fault)); then
      echo "boot.sh: [$case] the guest triple-faulted in the nested VM (above): running the case once more" >&2
      "$0" "$build" "$case"
      rc=$?
    fi
    ((rc == 0)) || failed+=("$case")
  done
  ((${#failed[@]} == 0)) || { echo "FAILED cases: ${failed[*]}" >&2; exit 1; }
  exit 0
fi
build=$1 case=$2
repo=$(cd "$(dirname "$0")/../.." && pwd)
kernel_dir=${HYPER_KERNEL_DIR:-$("$repo/kernel/build" --print-dir)}
vmm="$build/cli/hyper-vmm"
initrd="$build/tests/test-initrd.cpio"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
  echo "FAIL [$case]: $*" >&2
  echo "--- stdout ---" >&2; tail -n 30 "$work/out" >&2 2>/dev/null
  echo "--- stderr ---" >&2; tail -n 30 "$work/err" >&2 2>/dev/null
  [ "${HYPER_RIG:-}" = nested ] && grep -q 'triple-faulted' "$work/err" 2>/dev/null && exit "$nested_fault"
  exit 1
}

# vmm ARGS...: runs the VMM with a time bound (inside ${in_netns[@]}, when set), leaves
# stdout/stderr in $work, sets $rc.
in_netns=()
vmm() {
  timeout 120 "${in_netns[@]}" "$vmm" "$@" >"$work/out" 2>"$work/err"
  rc=$?
  [ "$rc" -ne 124 ] || fail "hyper-vmm did not finish within 120 s"
}

# start_holding_guest [VMM ARGS...]: in the background, a guest that formats a blank
# 32 MiB disk, writes and fsyncs a file on it, then holds; returns once it holds (or the
# VMM ended, or 2 minutes passed) with the VMM's pid in $vmm_pid.
start_holding_guest() {
  truncate -s 32M "$work/disk.img"
  "$vmm" --kernel "$kernel_dir/vmlinux" --initrd "$build/tests/test-initrd-busybox.cpio" --disk "$work/disk.img" \
    "$@" --cmdline "test_action=blk test_format=1 test_hold=1" >"$work/out" 2>"$work/err" &
  vmm_pid=$!
  for _ in $(seq 1200); do
    grep -q "blk synced, holding" "$work/out" && break
    kill -0 "$vmm_pid" 2>/dev/null || break
    sleep 0.1
  done
}

# start_virtiofsd DIR: Debian's virtiofsd serving DIR on $work/virtiofsd.sock, in the
# background (pid in $fsd_pid); returns once its socket exists.
virtiofsd=/usr/lib/qemu/virtiofsd
start_virtiofsd() {
  [ -x "$virtiofsd" ] || fail "no $virtiofsd (apt-get install qemu-system-common)"
  fs_sock=$work/virtiofsd.sock
  "$virtiofsd" --socket-path="$fs_sock" -o source="$1" -o cache=auto >"$work/virtiofsd" 2>&1 &
  fsd_pid=$!
  for _ in $(seq 100); do
    [ -S "$fs_sock" ] && return
    kill -0 "$fsd_pid" 2>/dev/null || break
    sleep 0.1
  done
  fail "virtiofsd did not create its socket: $(cat "$work/virtiofsd")"
}

# wait_for_out TEXT [TENTHS]: until the VMM's stdout has TEXT (default: 2 minutes) or
# the VMM ended.
wait_for_out() {
  for _ in $(seq "${2:-1200}"); do
    grep -q -- "$1" "$work/out" && return 0
    kill -0 "$vmm_pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q -- "$1" "$work/out"
}

# wait_vmm: waits up to 2 minutes for the background VMM $vmm_pid (killing it then), sets $rc.
wait_vmm() {
  for _ in $(seq 1200); do kill -0 "$vmm_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$vmm_pid" 2>/dev/null && { kill -9 "$vmm_pid"; wait "$vmm_pid"; fail "hyper-vmm did not finish within 2 minutes"; }
  wait "$vmm_pid"
  rc=$?
}

expect_rc() { [ "$rc" -eq "$1" ] || fail "exit status $rc, expected $1"; }
expect_out() { grep -q -- "$1" "$work/out" || fail "stdout lacks '$1'"; }
expect_err() { grep -q -- "$1" "$work/err" || fail "stderr lacks '$1'"; }

case $case in
  pvh-init)  # the ELF vmlinux boots through PVH to the init, which reports boot time
    vmm --kernel "$kernel_dir/vmlinux" --initrd "$initrd" --timings
    expect_rc 0
    expect_out "hyper-test-init: ready"
    expect_err "guest init reached user space after"
    grep -E -q 'timings: first_kvm_run_ms=[0-9.]+ boot_timer_ms=[0-9.]+ exit_ms=[0-9.]+' "$work/err" ||
      fail "no complete timings line"
    ;;
  console)  # whatever stdout the VMM is given works: a pipe, and the one it inherits
    # (a terminal, or in the rig a virtio console port that cannot be opened twice)
    timeout 120 "$vmm" --kernel "$kernel_dir/vmlinux" --initrd "$initrd" 2>"$work/err" | cat >"$work/out"
    rc=${PIPESTATUS[0]}
    expect_rc 0
    expect_out "hyper-test-init: exit 0"
    timeout 120 "$vmm" --kernel "$kernel_dir/vmlinux" --initrd "$initrd" --cmdline quiet 2>"$work/err"
    rc=$?
    expect_rc 0
    ;;
  bzimage-init)  # the bzImage boots through the 64-bit boot protocol
    vmm --kernel "$kernel_dir/bzImage" --initrd "$initrd" --timings
    expect_rc 0
    expect_out "hyper-test-init: ready"
    ;;
  exit-status)  # the byte written to the exit port becomes the VMM's exit status
    vmm --kernel "$kernel_dir/vmlinux" --initrd "$initrd" --cmdline "test_exit=42"
    expect_rc 42
    expect_out "hyper-test-init: exit 42"
    ;;
  smp-memory)  # 2 vCPUs and 256 MiB are what the guest sees
    vmm --kernel "$kernel_dir/vmlinux" --initrd "$initrd" --cpus 2 --memory 256 --cmdline "test_action=info"
    expect_rc 0
    expect_out "hyper-test-init: cpus=2 "
    kib=$(sed -n 's/.*mem_kib=\([0-9]*\).*/\1/p' "$work/out" | head -n1)
    [ -n "$kib" ] || fail "no mem_kib line"
    # MemTotal is RAM minus what the kernel keeps for itself: between 80% and 100% of 256 MiB.
    [ "$kib" -gt $((256 * 1024 * 8 / 10)) ] && [ "$kib" -le $((256 * 1024)) ] ||
      fail "guest sees $kib KiB, expected about 262144"
    ;;
  blk)  # virtio-blk: the guest reads the host's file and writes its own, which the host
        # then finds in the image after the VMM is gone; a read-only disk stays unchanged
    PATH=$PATH:/usr/sbin:/sbin
    mkdir -p "$work/root"
    echo "hello from the host" >"$work/root/hello.txt"
    mke2fs -q -t ext4 -d "$work/root" "$work/disk.img" 16M || fail "mke2fs failed"
    vmm --kernel "$kernel_dir/vmlinux" --initrd "$initrd" --disk "$work/disk.img,serial=hyper-disk-0" \
      --cmdline "test_action=blk"
    expect_rc 0
    expect_out "hyper-test-init: blk read: hello from the host"
    expect_out "hyper-test-init: blk wrote guest.txt"
    [ "$(debugfs -R 'cat /guest.txt' "$work/disk.img" 2>/dev/null)" = "written by the guest" ] ||
      fail "the guest's file is not in the disk image"
    before=$(sha256sum <"$work/disk.img")
    vmm --kernel "$kernel_dir/vmlinux" --initrd "$initrd" --disk "$work/disk.img,ro" --cmdline "test_action=blk"
    expect_rc 0
    expect_out "hyper-test-init: blk mounted read-only"
    expect_out "hyper-test-init: blk read: hello from the host"
    expect_out "hyper-test-init: blk write failed"
    [ "$(sha256sum <"$work/disk.img")" = "$before" ] || fail "a read-only disk was modified"
    ;;
  nbd)  # virtio-blk on an NBD export: nbdkit serves an ext4 image on a Unix socket; the
        # guest reads the host's file and writes its own, which reaches the image through
        # the server; SIGUSR1 shows the connection; then the server is killed under a guest
        # holding the disk, and the VMM logs that it gave the server up and runs on
    PATH=$PATH:/usr/sbin:/sbin
    command -v nbdkit >/dev/null || fail "nbdkit is needed (Debian package nbdkit)"
    mkdir -p "$work/root"
    echo "hello from the host" >"$work/root/hello.txt"
    mke2fs -q -t ext4 -d "$work/root" "$work/disk.img" 16M || fail "mke2fs failed"
    nbdkit -f -U "$work/nbd.sock" -P "$work/nbdkit.pid" file "$work/disk.img" &
    nbd_pid=$!
    trap 'kill "$nbd_pid" 2>/dev/null; rm -rf "$work"' EXIT
    for _ in $(seq 100); do [ -s "$work/nbdkit.pid" ] && break; sleep 0.1; done
    uri="nbd+unix:///?socket=$work/nbd.sock"
    vmm --kernel "$kernel_dir/vmlinux" --initrd "$initrd" --disk "$uri,serial=nbd-disk" --cmdline "test_action=blk"
    expect_rc 0
    expect_out "hyper-test-init: blk read: hello from the host"
    expect_out "hyper-test-init: blk wrote guest.txt"
    [ "$(debugfs -R 'cat /guest.txt' "$work/disk.img" 2>/dev/null)" = "written by the guest" ] ||
      fail "the guest's file is not in the exported image"
    "$vmm" --kernel "$kernel_dir/vmlinux" --initrd "$initrd" --disk "$uri" \
      --cmdline "test_action=blk test_hold=2" >"$work/out" 2>"$work/err" &
    vmm_pid=$!
    wait_for_out "hyper-test-init: blk synced, holding" || fail "the guest never held the disk: $(tail -n 5 "$work/out")"
    kill -USR1 "$vmm_pid"
    for _ in $(seq 50); do grep -q "NBD $uri: connected" "$work/err" && break; sleep 0.1; done
    expect_err "NBD $uri: connected"
    { kill -9 "$nbd_pid"; wait "$nbd_pid"; } 2>/dev/null
    # the guest writes and fsyncs every 200 ms: the next write finds the server gone
    wait_for_out "hyper-test-init: blk write failed" ||
      fail "the guest's writes did not fail once the server was gone: $(tail -n 5 "$work/out")"
    expect_err "disk $uri: the connection to the NBD server was lost"
    expect_err "the guest's requests to this disk now fail"
    kill -USR1 "$vmm_pid"
    for _ in $(seq 50); do grep -q "server given up" "$work/err" && break; sleep 0.1; done
    expect_err "NBD $uri: server given up"
    kill -0 "$vmm_pid" 2>/dev/null || fail "hyper-vmm ended when its NBD server died"
    kill -TERM "$vmm_pid"
    wait_vmm
    expect_rc 143
    ;;
  net)  # virtio-net: in a network namespace of its own, the guest's eth0 (10.0.2.15) reaches
        # a TCP echo server on the host end of a tap (10.0.2.1) and verifies 4 MiB echoed back
    PATH=$PATH:/usr/sbin:/sbin
    [ "$(id -u)" -eq 0 ] || fail "needs root for a network namespace and a tap (the rig runs as root)"
    modprobe tun 2>/dev/null || true
    ns=hyper-e2e-$$
    ip netns add "$ns" || fail "cannot create network namespace $ns"
    trap 'ip netns del "$ns" 2>/dev/null; rm -rf "$work"' EXIT
    ip -n "$ns" link set lo up
    ip -n "$ns" tuntap add dev tap0 mode tap || fail "cannot create a tap device"
    ip -n "$ns" addr add 10.0.2.1/24 dev tap0
    ip -n "$ns" link set tap0 up
    ip netns exec "$ns" timeout 120 "$build/tests/test-peer" tcp-echo 10.0.2.1 5000 >"$work/peer" 2>&1 &
    peer=$!
    in_netns=(ip netns exec "$ns")
    vmm --kernel "$kernel_dir/vmlinux" --initrd "$initrd" --net tap=tap0,mac=02:48:59:50:52:01 \
      --cmdline "test_action=net test_port=5000 test_bytes=4194304"
    wait "$peer" || { cat "$work/peer" >&2; fail "the host's echo server failed"; }
    expect_rc 0
    expect_err "eth0: tap tap0, MAC 02:48:59:50:52:01"
    expect_out "hyper-test-init: eth0 mac=02:48:59:50:52:01"
    expect_out "hyper-test-init: net echo verified 4194304 bytes"
    grep -q "echoed 4194304 bytes" "$work/peer" || fail "the host's echo server saw: $(cat "$work/peer")"
    ;;
  vsock)  # virtio-vsock both ways, 8 MiB echoed and verified byte by byte in each: a host
          # program reaches the guest's port 1234 through the VMM's socket ("CONNECT 1234"),
          # and the guest reaches the host's listener on port 5678 at <socket>_5678
    sock=$work/vsock.sock
    "$build/tests/test-peer" unix-echo "${sock}_5678" >"$work/listener" 2>&1 &
    listener=$!
    timeout 120 "$vmm" --kernel "$kernel_dir/vmlinux" --initrd "$initrd" --vsock "cid=3,socket=$sock" \
      --cmdline "test_action=vsock test_bytes=8388608" >"$work/out" 2>"$work/err" &
    vmm_pid=$!
    timeout 100 "$build/tests/test-peer" vsock-connect "$sock" 1234 8388608 >"$work/dialer" 2>&1 ||
      fail "host -> guest: $(cat "$work/dialer")"
    wait "$vmm_pid"
    rc=$?
    wait "$listener" || fail "the host's listener failed: $(cat "$work/listener")"
    expect_rc 0
    grep -q "vsock echo verified 8388608 bytes" "$work/dialer" || fail "host -> guest: $(cat "$work/dialer")"
    expect_out "hyper-test-init: vsock echoed 8388608 bytes for the host"
    expect_out "hyper-test-init: vsock echo verified 8388608 bytes"
    grep -q "echoed 8388608 bytes" "$work/listener" || fail "guest -> host listener saw: $(cat "$work/listener")"
    [ ! -e "$sock" ] || fail "the VMM left its socket $sock behind"
    ;;
  blk-flush)  # the guest formats a blank disk, writes a file and fsyncs it; the VMM is then
              # killed with SIGKILL, and the file is in the image
    PATH=$PATH:/usr/sbin:/sbin
    start_holding_guest
    # SIGUSR1 prints the devices' state and the VM runs on
    kill -USR1 "$vmm_pid" 2>/dev/null
    for _ in $(seq 100); do grep -q "queue 0: size 256" "$work/err" && break; sleep 0.1; done
    kill -0 "$vmm_pid" 2>/dev/null || fail "hyper-vmm ended on SIGUSR1"
    kill -9 "$vmm_pid" 2>/dev/null
    wait "$vmm_pid" 2>/dev/null
    rc=$?
    expect_out "hyper-test-init: blk formatted /dev/vda"
    expect_out "hyper-test-init: blk synced, holding"
    expect_rc 137
    expect_err "device state:"
    grep -E -q "virtio-mmio@0xd0000000 device type 2: status 0xf, .*; active" "$work/err" ||
      fail "no state line for the disk's transport"
    grep -E -q "queue 0: size 256, avail idx [0-9]+ \(consumed [0-9]+\), used idx [0-9]+ .*avail_event [0-9]+" "$work/err" ||
      fail "no queue state for the disk"
    [ "$(debugfs -R 'cat /guest.txt' "$work/disk.img" 2>/dev/null)" = "written by the guest" ] ||
      fail "the file the guest fsynced is not in the image after SIGKILL"
    ;;
  rng)  # virtio-rng through the MMIO transport: the guest's driver binds and reads entropy
    vmm --kernel "$kernel_dir/vmlinux" --initrd "$initrd" --rng --cmdline "test_action=rng"
    expect_rc 0
    expect_out "virtio_mmio.device=4K@0xd0000000:5"
    expect_out "hyper-test-init: rng_current=virtio_rng.0 hwrng_read=32 "
    expect_out "hyper-test-init: crng=ready"  # getrandom() does not block in PID 1
    bytes=$(sed -n 's/.*bytes=\([0-9a-f]*\).*/\1/p' "$work/out")
    [ ${#bytes} -eq 64 ] && [ "$bytes" != "$(printf '0%.0s' {1..64})" ] || fail "no entropy from /dev/hwrng: '$bytes'"
    ;;
  seccomp)  # every thread of a running VMM carries a seccomp filter (Seccomp: 2 in
            # /proc/PID/task/*/status): its 2 vCPUs, the disk's I/O thread and the event
            # loop; --no-seccomp boots with none
    start_holding_guest --cpus 2
    for task in /proc/"$vmm_pid"/task/*; do
      echo "$(sed -n 's/^Name:\t//p' "$task/status") $(sed -n 's/^Seccomp:\t//p' "$task/status")"
    done | sort >"$work/threads"
    kill -9 "$vmm_pid" 2>/dev/null
    wait "$vmm_pid" 2>/dev/null
    expect_out "hyper-test-init: blk synced, holding"
    [ "$(cat "$work/threads")" = $'hyper-io0 2\nhyper-vcpu0 2\nhyper-vcpu1 2\nhyper-vmm 2' ] ||
      fail "threads and their seccomp modes: $(tr '\n' ',' <"$work/threads"), expected each of hyper-io0, hyper-vcpu0, hyper-vcpu1 and hyper-vmm (the event loop) with 2"
    vmm --kernel "$kernel_dir/vmlinux" --initrd "$initrd" --no-seccomp --disk "$work/disk.img" --cmdline "test_exit=7"
    expect_rc 7
    expect_out "hyper-test-init: exit 7"
    ;;
  virtiofs)  # virtio-fs through Debian's virtiofsd: the guest mounts the host's directory,
             # reads the host's file, writes one the host then finds, and sees what the
             # host changed after the mount; then it resets the device (driver unbind and
             # bind) and mounts again. The VMM's seccomp filters stay on throughout.
    share=$(mktemp -d /tmp/hyper-virtiofs-XXXXXX)
    trap 'kill "$fsd_pid" 2>/dev/null; rm -rf "$work" "$share"' EXIT
    echo "hello from the host" >"$share/hello.txt"
    start_virtiofsd "$share"
    "$vmm" --kernel "$kernel_dir/vmlinux" --initrd "$initrd" --fs "$fs_sock,tag=hostshare" \
      --cmdline "test_action=virtiofs test_fs_tag=hostshare test_fs_rebind=1" >"$work/out" 2>"$work/err" &
    vmm_pid=$!
    wait_for_out "virtiofs wrote guest.txt" || fail "the guest wrote no file on the share"
    [ "$(cat "$share/guest.txt" 2>/dev/null)" = "written by the guest" ] ||
      fail "the guest's file is not in the host's directory: '$(cat "$share/guest.txt" 2>&1)'"
    kill -USR1 "$vmm_pid" 2>/dev/null
    echo "changed by the host" >"$share/hello.txt"
    echo "created by the host after the mount" >"$share/late.txt"
    wait_vmm
    expect_rc 0
    expect_err "virtio-fs hostshare: vhost-user back-end $fs_sock"
    expect_out "hyper-test-init: virtiofs mounted hostshare"
    expect_out "hyper-test-init: virtiofs read: hello from the host"
    expect_out "hyper-test-init: virtiofs late: created by the host after the mount"
    expect_out "hyper-test-init: virtiofs reread: changed by the host"
    expect_out "hyper-test-init: virtiofs umount: ok"
    # the driver's reset stopped the rings (GET_VRING_BASE) and its next probe started them again
    expect_out "hyper-test-init: virtiofs after reset: changed by the host"
    grep -E -q "device type 26: status 0xf, .*back-end $fs_sock connected, 1 activation\(s\); active" "$work/err" ||
      fail "no state line for the virtio-fs device"
    # virtiofsd ends when its front-end hangs up
    for _ in $(seq 100); do kill -0 "$fsd_pid" 2>/dev/null || break; sleep 0.1; done
    ! kill -0 "$fsd_pid" 2>/dev/null || fail "virtiofsd still runs after the VMM exited"
    ;;
  virtiofs-dies)  # the back-end is killed while the guest uses the share: the VMM logs it,
                  # reports the device as needing a reset, and runs on until stopped
    share=$(mktemp -d /tmp/hyper-virtiofs-XXXXXX)
    trap 'kill "$fsd_pid" 2>/dev/null; rm -rf "$work" "$share"' EXIT
    echo "hello from the host" >"$share/hello.txt"
    start_virtiofsd "$share"
    "$vmm" --kernel "$kernel_dir/vmlinux" --initrd "$initrd" --fs "$fs_sock,tag=hostshare" \
      --cmdline "test_action=virtiofs test_fs_tag=hostshare" >"$work/out" 2>"$work/err" &
    vmm_pid=$!
    wait_for_out "virtiofs wrote guest.txt" || fail "the guest wrote no file on the share"
    { kill -9 "$fsd_pid"; wait "$fsd_pid"; } 2>/dev/null
    for _ in $(seq 100); do grep -q "back-end hung up" "$work/err" && break; sleep 0.1; done
    expect_err "virtio-fs hostshare: the vhost-user back-end hung up; the device needs a reset"
    sleep 1
    kill -0 "$vmm_pid" 2>/dev/null || fail "hyper-vmm ended when its back-end died"
    kill -USR1 "$vmm_pid"
    for _ in $(seq 50); do grep -q "device type 26" "$work/err" && break; sleep 0.1; done
    grep -E -q "device type 26: status 0x4f, .*back-end $fs_sock gone" "$work/err" ||
      fail "the device does not report DEVICE_NEEDS_RESET with its back-end gone"
    kill -TERM "$vmm_pid"
    wait_vmm
    expect_rc 143
    ;;
  panic)  # a kernel panic ends the VMM non-zero and shows the console tail
    vmm --kernel "$kernel_dir/vmlinux" --initrd "$initrd" --cmdline "test_action=panic"
    expect_rc 1
    expect_err "the guest kernel panicked"
    expect_err "Kernel panic - not syncing"
    ;;
  bad-kernel)  # files that are not kernels get a clear error before any guest runs
    vmm --kernel /etc/hostname --initrd "$initrd"
    expect_rc 2
    expect_err "neither an ELF vmlinux nor a bzImage"
    head -c 4096 "$kernel_dir/vmlinux" >"$work/truncated"
    vmm --kernel "$work/truncated"
    expect_rc 2
    expect_err "kernel image:"
    vmm --kernel "$work/does-not-exist"
    expect_rc 2
    expect_err "No such file or directory"
    vmm --kernel "$kernel_dir/vmlinux" --memory 16
    expect_rc 2
    expect_err "--memory must be between"
    head -c $((8 << 20)) /dev/zero >"$work/big-initrd"
    vmm --kernel "$kernel_dir/vmlinux" --initrd "$work/big-initrd" --memory 32
    expect_rc 2
    expect_err "give the guest more memory"
    vmm --kernel "$kernel_dir/vmlinux" --initrd "$work"
    expect_rc 2
    expect_err "is not a regular file"
    ;;
  bad-devices)  # bad device flags and backends get a clear error and status 2, no guest run
    touch "$work/empty.img"
    echo "not a socket" >"$work/file"
    vmm --kernel "$kernel_dir/vmlinux" --disk "$work/empty.img,io=bogus"
    expect_rc 2
    expect_err "unknown option 'io=bogus'"
    vmm --kernel "$kernel_dir/vmlinux" --disk "$work/empty.img"
    expect_rc 2
    expect_err "smaller than one sector"
    vmm --kernel "$kernel_dir/vmlinux" --disk "http://127.0.0.1/disk.img"
    expect_rc 2
    expect_err "not a disk hyper-vmm can open"
    vmm --kernel "$kernel_dir/vmlinux" --disk "nbd+unix:///?socket=$work/no-nbd.sock"
    expect_rc 2
    expect_err "connect to nbd+unix:///?socket=$work/no-nbd.sock"
    vmm --kernel "$kernel_dir/vmlinux" --net mac=02:00:00:00:00:01
    expect_rc 2
    expect_err "tap=NAME is required"
    vmm --kernel "$kernel_dir/vmlinux" --net tap=tap0,mac=01:00:5e:00:00:01
    expect_rc 2
    expect_err "is not a unicast MAC address"
    vmm --kernel "$kernel_dir/vmlinux" --net tap=this-name-is-far-too-long
    expect_rc 2
    expect_err "is not a valid interface name"
    vmm --kernel "$kernel_dir/vmlinux" --vsock "cid=2,socket=$work/v.sock"
    expect_rc 2
    expect_err "guest CID 2 is reserved"
    vmm --kernel "$kernel_dir/vmlinux" --vsock "cid=3,socket=$work/file"
    expect_rc 2
    expect_err "is not a socket; not replacing it"
    [ "$(cat "$work/file")" = "not a socket" ] || fail "the VMM changed a file it was wrongly given as its socket"
    vmm --kernel "$kernel_dir/vmlinux" --vsock cid=3
    expect_rc 2
    expect_err "needs cid=N"
    vmm --kernel "$kernel_dir/vmlinux" --fs "$work/no-such.sock,tag=share"
    expect_rc 2
    expect_err "virtio-fs share ($work/no-such.sock): vhost-user socket $work/no-such.sock: No such file or directory"
    vmm --kernel "$kernel_dir/vmlinux" --fs "$work/file,tag=share"
    expect_rc 2
    expect_err "is not a socket"
    vmm --kernel "$kernel_dir/vmlinux" --fs "$work/v.sock,tag=$(printf 'x%.0s' {1..37})"
    expect_rc 2
    expect_err "must be 1 to 36 bytes (it has 37)"
    vmm --kernel "$kernel_dir/vmlinux" --fs "$work/v.sock"
    expect_rc 2
    expect_err "tag=TAG is required"
    # one interrupt line each: the IOAPIC's pins 5 to 23 serve 19 devices, not 20
    truncate -s 1M "$work/small.img"
    disks=()
    for _ in $(seq 20); do disks+=(--disk "$work/small.img,ro"); done
    vmm --kernel "$kernel_dir/vmlinux" "${disks[@]}"
    expect_rc 2
    expect_err "too many virtio devices: this machine has interrupt lines for 19"
    ;;
  *)
    echo "unknown case '$case'" >&2
    exit 2
    ;;
esac
echo "PASS [$case] (${SECONDS} s)"
