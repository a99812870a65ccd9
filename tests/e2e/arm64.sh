#!/usr/bin/env bash
# End-to-end boots of the arm64 VMM (docs/arm64.md): the aarch64 hyper-vmm boots the arm64
# guest kernel to the test init under the real (emulated) arm64 KVM of the nested arm64 VM
# (tests/rig/arm64-run), case by case (tests/e2e/arm64-cases.sh lists them). Runs on any
# host: the arm64 VM is emulated.
# Usage: arm64.sh [--gic 2|3] ARM64_BUILD_DIR ARM64_KERNEL_DIR CASE...
# --gic 2: the nested VM has a GICv2, so the VMM must fall back to an in-kernel GICv2.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
fail() { echo "arm64.sh: $*" >&2; exit 1; }
gic=3
if [ "${1-}" = --gic ]; then gic=${2-}; shift 2; fi
(($# >= 3)) || fail "usage: arm64.sh ARM64_BUILD_DIR ARM64_KERNEL_DIR CASE..."
build=$1 kernel_dir=$2
shift 2
[ -x "$build/cli/hyper-vmm" ] && [ -f "$build/test-initrd.cpio" ] && [ -x "$build/test-peer" ] ||
  fail "no arm64 build in '$build' (hyper-vmm, test-initrd.cpio, test-peer): scripts/setup makes it"
[ -f "$kernel_dir/Image" ] || fail "no arm64 guest kernel in '$kernel_dir': kernel/build --arch arm64 makes it"

payload=$(mktemp -d)
trap 'rm -rf "$payload"' EXIT
cp "$build/cli/hyper-vmm" "$build/test-initrd.cpio" "$build/test-peer" "$kernel_dir/Image" "$payload/"
# The blk case's disk: ext4 holding the host's file.
mkdir "$payload/.root"
echo "hello from the host" >"$payload/.root/hello.txt"
PATH=$PATH:/usr/sbin:/sbin mke2fs -q -t ext4 -d "$payload/.root" "$payload/disk.img" 16M || fail "mke2fs failed"
rm -rf "$payload/.root"
"$repo/tests/rig/arm64-run" --timeout 1200 --gic "$gic" "$payload" "$repo/tests/e2e/arm64-cases.sh" "$@"
rc=$?
exit "$rc"  # not exec: the trap removes the payload
