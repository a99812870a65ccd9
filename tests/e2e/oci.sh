#!/usr/bin/env bash
# End-to-end tests of hyper-runtime, the OCI runtime, inside tests/rig/run (or on a host
# with hardware KVM, as root). Usage: oci.sh BUILD_DIR GROUP...
#   lifecycle   tests/e2e/oci-lifecycle drives runc (the reference) and hyper-runtime through
#               the same scenarios: create/start/state/kill/delete, exit statuses of the pid
#               in --pid-file (reaped as a subreaper, as conmon does), stdio, exec (flags,
#               --process, --detach), process user/groups/cwd/env/hostname/rlimits, bind
#               mounts of a directory (written through) and a file (read-only), tmpfs,
#               a read-only root, and errors; the transcripts must be identical
#   cli         what only hyper-runtime prints: --version, features, ps, state's fields,
#               bad input (a bad id, hooks, a user namespace, a bad flag) with a clear
#               message and exit 1, the JSON --log containerd and conmon read, memory and
#               CPU limits as the VM's size
#   podman      podman (Debian's, through conmon) with --runtime hyper-runtime: run --rm
#               (output, exit status), run -it through a pty, run -d, exec, stop, rm
#   containerd  containerd with ctr run --runc-binary hyper-runtime: run --rm (output, exit
#               status), run -t, run -d, task exec, kill, task rm
set -uo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || fail "hyper-runtime needs root (virtiofsd, the VMM's jail): run as root or in tests/rig/run"
runtime="$build/cli/hyper-runtime"
oci_root="$work/oci-root"
bb=$(command -v busybox) || fail "busybox is needed (busybox-static)"
on_fail() {
  for log in "$oci_root"/@vm/containers/*/console.log; do
    [ -s "$log" ] && { echo "--- $log ---"; tail -n 20 "$log"; }
  done
  [ ! -f "$work/containerd.log" ] || { echo "--- containerd.log ---"; tail -n 20 "$work/containerd.log"; }
}
[ "$(cat /sys/class/net/lo/operstate 2>/dev/null)" = unknown ] || ip link set lo up || fail "cannot bring lo up"

# r ARGS...: runs hyper-runtime with a time bound; like `h`.
r() {
  echo "[$group/$step] hyper-runtime $*" >&2
  timeout 150 "$runtime" --root "$oci_root" "$@" >"$work/out" 2>"$work/err" </dev/null
  rc=$?
  [ "$rc" -ne 124 ] || fail "hyper-runtime $* did not finish within 150 s"
}

# A busybox root with the users the scenarios switch to and every mount point, so that
# it also serves read-only.
# in_pty COMMAND: runs the shell command COMMAND on a pty of script(1)'s; like `r`.
in_pty() {
  echo "[$group/$step] ${1:0:60}" >&2
  timeout 150 script -qec "$1" /dev/null </dev/null >"$work/out" 2>"$work/err"
  rc=$?
}

make_rootfs() {
  local root=$1
  # No /data or /scratch: the mounts scenario's targets are made by the runtime.
  mkdir -p "$root"/{bin,etc,proc,sys,dev,tmp} || fail "cannot make $root"
  cp "$bb" "$root/bin/busybox" || fail "cannot copy busybox"
  # Relative links: --install would point them at this host's path of the binary.
  for applet in $("$bb" --list); do [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nhyper:x:1000:1000::/home/hyper:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\nhyper:x:1000:\nextra:x:2000:hyper\nother:x:3000:hyper\n' >"$root/etc/group"
  : >"$root/etc/motd"
  [ -x "$root/bin/sh" ] || fail "busybox --install made no sh"
}

group_lifecycle() {
  command -v runc >/dev/null || fail "no runc (Debian package runc): it is the reference"
  make_rootfs "$work/lc/rootfs"
  mkdir -p "$work/lc/host/dir" && echo from-host >"$work/lc/host/dir/in" && echo motd-from-host >"$work/lc/host/motd"
  (cd "$work/lc" && runc spec) || fail "runc spec failed"
  mv "$work/lc/config.json" "$work/lc/spec.json"
  local scenarios=(exit kill created exec process mounts errors)
  for rt in runc hyper; do
    step=$rt
    rm -rf "$work/lc/bundles" "$work/lc/io" "$work/lc/host/dir/out"
    local bin=/usr/sbin/runc root=$work/runc-root
    [ "$rt" = hyper ] && bin=$runtime root=$oci_root
    echo "[$group/$step] oci-lifecycle $bin ${scenarios[*]}" >&2
    timeout 600 "$repo/tests/e2e/oci-lifecycle" "$bin" "$root" "$work/lc" "${scenarios[@]}" \
      >"$work/$rt.transcript" 2>"$work/$rt.err" ||
      { cp "$work/$rt.transcript" "$work/out"; cp "$work/$rt.err" "$work/err"; fail "oci-lifecycle with $rt failed"; }
  done
  step=compare
  cp "$work/hyper.transcript" "$work/out"
  if ! diff -u "$work/runc.transcript" "$work/hyper.transcript" >"$work/err"; then
    for rt in runc hyper; do echo "--- what the runtimes said to oci-lifecycle ($rt) ---"; cat "$work/$rt.err"; done >>"$work/err"
    fail "hyper-runtime's transcript differs from runc's"
  fi
  grep -q "UNEXPECTED" "$work/runc.transcript" && fail "the reference run with runc itself went wrong"
  # What the transcripts must say, in case both runtimes got it wrong the same way.
  for line in "exit: exit status 3" "exit: stdout 'out\\\\n' stderr 'err\\\\n'" "kill: exit status 7" \
              "exec: foreground 5 'from-exec\\\\n'" "exec: exit status after KILL 137" \
              "mounts: the host sees the write 'written\\\\n'" "created: status created"; do
    grep -q -- "$line" "$work/hyper.transcript" || fail "the transcript lacks \"$line\""
  done
  echo "[$group] $(wc -l <"$work/hyper.transcript") observations identical to runc's" >&2
}

# bundle NAME CONFIG-EDIT: a bundle from `runc spec` with a python expression applied to `c`.
bundle() {
  local dir=$work/bundles/$1
  mkdir -p "$dir"
  [ -d "$work/cli-rootfs" ] || make_rootfs "$work/cli-rootfs"
  (cd "$dir" && runc spec) || fail "runc spec failed"
  /usr/bin/python3 - "$dir/config.json" "$work/cli-rootfs" "$2" <<'EOF' || fail "cannot edit the bundle"
import json, sys
path, rootfs, edit = sys.argv[1:]
c = json.load(open(path))
c["root"]["path"] = rootfs
c["process"]["terminal"] = False
exec(edit)
json.dump(c, open(path, "w"))
EOF
  echo "$dir"
}

group_cli() {
  command -v runc >/dev/null || fail "no runc (Debian package runc): its 'spec' makes the bundles"
  step=version; r --version
  expect_rc 0; expect_out "^hyper-runtime version"; expect_out "^spec: 1.0.2"
  step=features; r features
  expect_rc 0
  /usr/bin/python3 -c 'import json,sys; f=json.load(open(sys.argv[1])); assert f["ociVersionMax"]=="1.0.2" and f["hooks"]==[]' "$work/out" ||
    fail "features is not the expected JSON"
  step=bad-id; r create --bundle "$(bundle plain 'pass')" 'bad/id'
  expect_rc 1; expect_err 'invalid container id "bad/id"'
  step=hooks; r create --bundle "$(bundle hooks 'c["hooks"]={"prestart":[{"path":"/bin/true"}]}')" hooks
  expect_rc 1; expect_err "hooks.prestart: OCI hooks are not supported"
  step=userns; r create --bundle "$(bundle userns 'c["linux"]["namespaces"].append({"type":"user"})')" userns
  expect_rc 1; expect_err "a user namespace is not supported"
  step=bad-flag; r create --no-such-flag x
  expect_rc 1; expect_err "unknown flag --no-such-flag"
  step=unknown-command; r frobnicate
  expect_rc 1; expect_err 'unknown command "frobnicate"'
  step=bad-mount; r create --bundle "$(bundle badmount 'c["mounts"].append({"destination":"/x","type":"nfs","source":"h:/e"})')" badmount
  expect_rc 1; expect_err "a nfs mount on /x is not supported in a VM"
  step=json-log
  timeout 60 "$runtime" --root "$oci_root" --log "$work/log.json" --log-format json state nosuch >/dev/null 2>&1
  /usr/bin/python3 -c 'import json,sys; e=json.loads(open(sys.argv[1]).readline()); assert e["level"]=="error" and "does not exist" in e["msg"]' \
    "$work/log.json" || fail "no JSON error line in --log: $(cat "$work/log.json")"
  step=limits
  local dir; dir=$(bundle limits 'c["process"]["args"]=["sh","-c","nproc; grep MemTotal /proc/meminfo"]; c["linux"]["resources"]={"memory":{"limit":200*1024*1024},"cpu":{"quota":150000,"period":100000}}')
  r create --bundle "$dir" --pid-file "$work/limits.pid" limits
  expect_rc 0
  step=limits-state; r state limits
  expect_rc 0; expect_out '"status": "created"'; expect_out "\"bundle\": \"$dir\""; expect_out "\"pid\": $(cat "$work/limits.pid")"
  step=limits-ps; r ps --format json limits
  expect_rc 0; expect_out "^\[$(cat "$work/limits.pid")\]$"
  # Its stdout is this script's file: what the container printed lands there.
  step=limits-start
  timeout 150 "$runtime" --root "$oci_root" create --bundle "$dir" limits2 >"$work/limits.out" 2>&1 </dev/null
  r start limits2
  expect_rc 0
  wait_for grep -q MemTotal "$work/limits.out" || fail "no output from the limits container: $(cat "$work/limits.out")"
  grep -q '^2$' "$work/limits.out" || fail "quota 1.5 CPUs did not give 2 vCPUs: $(cat "$work/limits.out")"
  local kib; kib=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' "$work/limits.out")
  [ -n "$kib" ] && [ "$kib" -gt $((150 * 1024)) ] && [ "$kib" -le $((200 * 1024)) ] || fail "MemTotal $kib kB for a 200 MiB limit"
  step=cleanup; r delete --force limits
  expect_rc 0
  wait_for sh -c "! '$runtime' --root '$oci_root' state limits2 | grep -q running" || fail "limits2 never stopped"
  r delete limits2
  expect_rc 0
  step=nothing-left; ls "$oci_root" >"$work/out"
  expect_out_exactly "@vm"
  ls "$oci_root/@vm/containers" >"$work/out"
  expect_out_exactly ""
}

podman_() {
  echo "[$group/$step] podman $*" >&2
  timeout 150 podman --root "$work/podman/root" --runroot "$work/podman/run" --cgroup-manager cgroupfs \
    --events-backend file --storage-driver vfs --runtime "$work/podman-runtime" "$@" \
    >"$work/out" 2>"$work/err" </dev/null
  rc=$?
  [ "$rc" -ne 124 ] || fail "podman $* did not finish within 150 s"
}

group_podman() {
  command -v podman >/dev/null || fail "no podman (Debian package podman; scripts/setup installs it)"
  "$repo/tests/images/make-test-image" "$work/busybox.tar" >/dev/null || fail "make-test-image failed"
  # podman's cleanup process (conmon's exit command) runs the runtime without the
  # --runtime-flag options, so this test's --root comes from a wrapper.
  printf '#!/bin/sh\nexec %q --root %q "$@"\n' "$runtime" "$oci_root" >"$work/podman-runtime"
  chmod 755 "$work/podman-runtime"
  step=load; podman_ load -i "$work/busybox.tar"
  expect_rc 0; expect_out "Loaded image: localhost/busybox:latest"
  step=run; podman_ run --rm busybox echo hello from podman
  expect_rc 0; expect_out_exactly "hello from podman"
  step=exit-status; podman_ run --rm --network none busybox sh -c 'echo err >&2; exit 3'
  expect_rc 3; expect_err "^err$"
  step=run-it
  in_pty "podman --root $work/podman/root --runroot $work/podman/run --cgroup-manager cgroupfs --events-backend file --storage-driver vfs --runtime $work/podman-runtime run -it --rm --network none busybox sh -c 'tty; echo in-tty'"
  # Not anchored: conmon's first write to script's pty is a NUL, with runc as with us.
  expect_rc 0; expect_out "/dev/pts/0"; expect_out "in-tty"
  step=run-d; podman_ run -d --name web --network none busybox sh -c 'trap "exit 0" TERM; while :; do sleep 1; done'
  expect_rc 0
  step=exec; podman_ exec web sh -c 'echo exec-in; hostname'
  expect_rc 0; expect_out "^exec-in$"
  step=exec-status; podman_ exec web sh -c 'exit 7'
  expect_rc 7
  step=ps; podman_ ps
  expect_rc 0; expect_out "web"
  step=stop; podman_ stop -t 20 web
  expect_rc 0
  step=inspect; podman_ inspect --format '{{.State.Status}} {{.State.ExitCode}}' web
  expect_rc 0; expect_out_exactly "exited 0"
  step=rm; podman_ rm web
  expect_rc 0
  step=nothing-left; ls "$oci_root/@vm/containers" >"$work/out"
  expect_out_exactly ""
}

ctr_() {
  echo "[$group/$step] ctr $*" >&2
  timeout 150 ctr --address "$work/containerd.sock" "$@" >"$work/out" 2>"$work/err" </dev/null
  rc=$?
  [ "$rc" -ne 124 ] || fail "ctr $* did not finish within 150 s"
}

group_containerd() {
  command -v containerd >/dev/null && command -v ctr >/dev/null || fail "no containerd (Debian package containerd)"
  "$repo/tests/images/make-test-image" "$work/busybox.tar" >/dev/null || fail "make-test-image failed"
  cat >"$work/containerd.toml" <<EOF
version = 2
root = "$work/containerd/root"
state = "$work/containerd/state"
[grpc]
  address = "$work/containerd.sock"
EOF
  containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
  wait_for test -S "$work/containerd.sock" || fail "containerd did not start"
  local image=docker.io/library/busybox:latest run=(run --snapshotter native --runc-binary "$runtime")
  step=import; ctr_ images import --snapshotter native "$work/busybox.tar"
  expect_rc 0
  step=run; ctr_ "${run[@]}" --rm "$image" c1 echo hello from ctr
  expect_rc 0; expect_out_exactly "hello from ctr"
  step=exit-status; ctr_ "${run[@]}" --rm "$image" c2 sh -c 'exit 4'
  expect_rc 4
  step=run-t
  in_pty "ctr --address $work/containerd.sock run -t --rm --snapshotter native --runc-binary $runtime $image c3 sh -c 'tty; echo in-tty'"
  expect_rc 0; expect_out "/dev/pts/0"; expect_out "in-tty"
  step=run-d; ctr_ "${run[@]}" -d "$image" c4 sh -c 'trap "exit 9" TERM; while :; do sleep 1; done'
  expect_rc 0
  step=task-ls; ctr_ task ls
  expect_rc 0; expect_out "c4 .*RUNNING"
  step=exec; ctr_ task exec --exec-id e1 c4 sh -c 'echo exec-in; exit 6'
  expect_rc 6; expect_out_exactly "exec-in"
  step=kill; ctr_ task kill c4
  expect_rc 0
  wait_for sh -c "ctr --address '$work/containerd.sock' task ls | grep -q 'c4 .*STOPPED'" || fail "c4 did not stop"
  step=task-rm; ctr_ task rm c4
  expect_rc 0; expect_err "exit code 9"
  step=container-rm; ctr_ containers rm c4
  expect_rc 0
  step=nothing-left; ls "/run/containerd/runc/default/@vm/containers" >"$work/out" 2>/dev/null
  expect_out_exactly ""
}

for group in "${@:2}"; do
  declare -F "group_$group" >/dev/null || fail "unknown group $group"
  "group_$group"
  echo "PASS [$group]" >&2
done
