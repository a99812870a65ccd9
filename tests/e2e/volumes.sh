#!/usr/bin/env bash
# End-to-end tests of hyper's volumes, inside tests/rig/run (or a host with hardware KVM,
# as root). Usage: volumes.sh BUILD_DIR GROUP...
#   volumes    named volumes: create/ls/inspect/rm/prune, data kept across containers,
#              an unknown name created by run, :ro enforced, one writer at a time, a volume
#              in use not removed, --mount, --tmpfs, anonymous volumes, bad input (125)
#   snapshots  snapshot create/ls/rm of an idle volume and of one a running container
#              writes (frozen through the agent), volume create --from-snapshot
#   durability data fsynced in the guest survives kill -9 of the VMM, on a volume (on a
#              host directory: in binds)
#   binds      host directories over virtio-fs: seen both ways, :ro enforced, --mount
#              type=bind, fsynced data kept after kill -9 of the VMM, a missing path or a
#              file refused
#   nbd        a volume on an NBD server (nbdkit on 127.0.0.1): data kept; the server
#              going away gives the guest I/O errors and leaves the VMM running
set -uo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || fail "volumes need root (the VMM's jail, virtiofsd): run as root or in tests/rig/run"
on_fail() { "$hyper" ps -a; "$hyper" volume ls; ls -la "$HYPER_ROOT"/volumes/* 2>/dev/null; cat "$HYPER_ROOT"/containers/*/virtiofsd-*.log 2>/dev/null; }

state_field() {  # state_field NAME FIELD: a field of the named container's state.json
  python3 -c 'import json,sys,glob,os
for p in glob.glob(sys.argv[1] + "/containers/*/config.json"):
  if json.load(open(p)).get("name") == sys.argv[2]:
    print(json.load(open(os.path.join(os.path.dirname(p), "state.json"))).get(sys.argv[3], 0))' "$HYPER_ROOT" "$1" "$2"
}
running() { h inspect "$1"; grep -q '"Running": true' "$work/out"; }
stopped() { h inspect "$1"; grep -q '"Running": false' "$work/out"; }

run_group() {
case $group in
  volumes)
    load_busybox
    step=create; h volume create --opt size=256m data; expect_rc 0; expect_out_exactly data
    step=create-again; h volume create --opt size=256m data; expect_rc 0; expect_out_exactly data
    step=ls; h volume ls; expect_rc 0; expect_out "local *data *268MB"
    step=inspect; h volume inspect data; expect_rc 0; expect_out '"Name": "data"'; expect_out '"SizeBytes": 268435456'
    step=write; h run --rm -v data:/data busybox sh -c 'echo kept >/data/file && df -m /data | tail -n 1'
    expect_rc 0; expect_out "/data"
    step=read; h run --rm -v data:/mnt:ro busybox cat /mnt/file; expect_rc 0; expect_out_exactly kept
    step=read-only; h run --rm -v data:/mnt:ro busybox sh -c 'echo x >/mnt/other'
    [ "$rc" -ne 0 ] || fail "a :ro volume took a write"; expect_err "Read-only file system"
    step=mount-flag; h run --rm --mount type=volume,source=data,target=/v,readonly busybox cat /v/file
    expect_rc 0; expect_out_exactly kept
    step=auto-create; h run --rm -v fresh:/f busybox sh -c 'ls /f'; expect_rc 0
    h volume ls -q; expect_out "^fresh$"
    step=one-writer; h run -d --name writer -v data:/data busybox sleep 600; expect_rc 0
    wait_for running writer || fail "writer did not start"
    h run --rm -v data:/data busybox true; expect_rc 125; expect_err "in use by another running container"
    h run --rm -v data:/data:ro busybox true; expect_rc 125; expect_err "writes it"
    step=rm-in-use; h volume rm data; expect_rc 1; expect_err "volume is in use"
    h rm -f writer; expect_rc 0
    h volume rm data; expect_rc 0
    h volume inspect data; expect_rc 1; expect_err "no such volume"
    step=readers-share; h volume create shared; h run -d --name r1 -v shared:/s:ro busybox sleep 600; expect_rc 0
    h run --rm -v shared:/s:ro busybox ls /s; expect_rc 0; expect_out lost+found
    h rm -f r1
    step=tmpfs; h run --rm --tmpfs /cache:size=8m,mode=1770 busybox sh -c 'stat -c %a /cache; df -k /cache | tail -n 1'
    expect_rc 0; expect_out "^1770$"; expect_out "tmpfs *8192 "
    step=anonymous; h run --rm -v /scratch busybox sh -c 'echo x >/scratch/y'; expect_rc 0
    h volume ls -q; [ "$(wc -l <"$work/out")" -eq 2 ] || fail "the --rm container's anonymous volume stayed: $(cat "$work/out")"
    step=anonymous-kept; h run --name anon -v /scratch busybox true; expect_rc 0
    h volume ls -q; [ "$(wc -l <"$work/out")" -eq 3 ] || fail "no anonymous volume for the container"
    h rm -v anon; expect_rc 0
    h volume ls -q; [ "$(wc -l <"$work/out")" -eq 2 ] || fail "rm -v left the anonymous volume"
    step=prune; h volume prune -f -a; expect_rc 0; expect_out "fresh"; expect_out "shared"
    h volume ls -q; expect_out_exactly ""
    step=bad-size; h volume create --opt size=12x v1; expect_rc 125; expect_err "invalid size"
    step=small-size; h volume create --opt size=1k v1; expect_rc 125; expect_err "out of range"
    step=bad-opt; h volume create --opt colour=red v1; expect_rc 125; expect_err "unknown option"
    step=bad-driver; h volume create -d ceph v1; expect_rc 125; expect_err "not found"
    step=bad-name; h run --rm -v 'bad$name:/x' busybox true; expect_rc 125; expect_err "invalid characters"
    step=relative; h run --rm -v rel/dir:/x busybox true; expect_rc 125; expect_err "relative host path"
    step=missing-host; h run --rm -v /no/such/dir:/x busybox true; expect_rc 125; expect_err "does not exist"
    step=relative-target; h run --rm -v data:x busybox true; expect_rc 125; expect_err "must be absolute"
    step=snapshot-missing; h volume snapshot create nosuch; expect_rc 125; expect_err "no such volume: nosuch"
    h ps -a -q; expect_out_exactly ""
    ;;

  snapshots)
    load_busybox
    h volume create --opt size=128m vol; expect_rc 0
    h run --rm -v vol:/d busybox sh -c 'echo one >/d/f'; expect_rc 0
    step=idle; h volume snapshot create vol first; expect_rc 0; expect_out_exactly first
    step=taken-name; h volume snapshot create vol first; expect_rc 125; expect_err "already"
    h run --rm -v vol:/d busybox sh -c 'echo two >/d/f'; expect_rc 0
    step=restore; h volume create --from-snapshot vol/first back; expect_rc 0
    h run --rm -v back:/d busybox cat /d/f; expect_rc 0; expect_out_exactly one
    # A writer keeps appending; the snapshot taken meanwhile is a clean file system whose
    # file ends in a whole line.
    step=live; h run -d --name busy -v vol:/d busybox sh -c \
      'i=0; while :; do echo "line $i" >>/d/log; i=$((i+1)); [ $((i % 100)) -eq 0 ] && sync; done'
    expect_rc 0
    wait_for running busy || fail "busy did not start"
    sleep 3
    h volume snapshot create vol live; expect_rc 0; expect_out_exactly live
    running busy || fail "the writer did not survive its snapshot"
    h exec busy sh -c 'wc -l </d/log'; expect_rc 0; lines_after=$(cat "$work/out")
    h volume create --from-snapshot live fromlive; expect_rc 0
    h run --rm -v fromlive:/d busybox sh -c 'wc -l </d/log; tail -n 1 /d/log'
    expect_rc 0; expect_out "^line [0-9]*$"
    taken=$(head -n 1 "$work/out")
    [ "$taken" -gt 0 ] && [ "$taken" -le "$lines_after" ] || fail "the live snapshot holds $taken lines, the volume $lines_after"
    step=ls; h volume snapshot ls vol; expect_rc 0; expect_out "^first "; expect_out "^live "; expect_out "sparse copy\|reflink"
    step=rm; h volume snapshot rm vol first; expect_rc 0
    h volume snapshot ls -q vol; expect_out_exactly live
    step=rm-missing; h volume snapshot rm vol first; expect_rc 1; expect_err "no such snapshot"
    step=from-missing; h volume create --from-snapshot vol/nosuch x2; expect_rc 125; expect_err "no such snapshot"
    h rm -f busy
    ;;

  durability)
    load_busybox
    h volume create --opt size=64m dur; expect_rc 0
    step=write; h run -d --name d1 -v dur:/v busybox sh -c \
      'dd if=/dev/urandom of=/v/blob bs=64k count=16 conv=fsync 2>/dev/null && md5sum /v/blob >/v/sum && sync &&
       touch /v/done && sync && sleep 600'
    expect_rc 0
    wait_for running d1 || fail "d1 did not start"
    h exec d1 sh -c 'while [ ! -e /v/done ]; do sleep 0.1; done'; expect_rc 0
    vmm=$(state_field d1 vmm_pid)
    [ -n "$vmm" ] && [ "$vmm" -gt 0 ] || fail "no VMM pid for d1"
    kill -9 "$vmm"
    wait_for stopped d1 || fail "d1 still runs after kill -9 of its VMM"
    step=volume-kept; h run --rm -v dur:/v busybox sh -c 'md5sum /v/blob; cat /v/sum'
    expect_rc 0; [ "$(awk '{print $1}' "$work/out" | uniq | wc -l)" -eq 1 ] || fail "the volume lost fsynced data: $(cat "$work/out")"
    h rm -f d1
    ;;

  binds)
    load_busybox
    mkdir -p "$work/share" && echo from-host >"$work/share/in" && chmod 755 "$work/share"
    step=both-ways; h run -d --name b1 -v "$work/share":/share busybox sh -c \
      'cat /share/in; echo from-guest >/share/out; while [ ! -e /share/later ]; do sleep 0.2; done; cat /share/later; sleep 600'
    expect_rc 0
    wait_for test -e "$work/share/out" || fail "the guest's file never reached the host"
    [ "$(cat "$work/share/out")" = from-guest ] || fail "the host sees '$(cat "$work/share/out")'"
    echo changed-on-host >"$work/share/later"
    wait_for sh -c "'$hyper' logs b1 | grep -q changed-on-host" || fail "a host change after the mount was not seen"
    h logs b1; expect_out "^from-host$"
    h rm -f b1
    step=read-only; h run --rm -v "$work/share":/share:ro busybox sh -c 'cat /share/in; echo x >/share/no'
    [ "$rc" -ne 0 ] || fail "a :ro host directory took a write"; expect_out from-host
    [ ! -e "$work/share/no" ] || fail "the write reached the host"
    step=mount-bind; h run --rm --mount type=bind,source="$work/share",target=/s,readonly busybox cat /s/in
    expect_rc 0; expect_out_exactly from-host
    step=durable; h run -d --name b2 -v "$work/share":/h busybox sh -c \
      'dd if=/dev/urandom of=/h/blob bs=64k count=16 conv=fsync 2>/dev/null && md5sum /h/blob >/h/sum && sleep 600'
    expect_rc 0
    wait_for test -s "$work/share/sum" || fail "b2 never wrote its file"
    vmm=$(state_field b2 vmm_pid); kill -9 "$vmm"
    wait_for stopped b2 || fail "b2 still runs after kill -9 of its VMM"
    [ "$(md5sum <"$work/share/blob" | awk '{print $1}')" = "$(awk '{print $1}' "$work/share/sum")" ] ||
      fail "the host directory lost fsynced data"
    h rm -f b2
    # A file is bound as a copy made at start: the container sees it, its writes stay in the VM's copy.
    step=file; h run --rm -v "$work/share/in":/etc/in busybox sh -c 'cat /etc/in; echo changed >/etc/in && cat /etc/in'
    expect_rc 0; expect_out "^from-host$"; expect_out "^changed$"
    [ "$(cat "$work/share/in")" = from-host ] || fail "a write to a bound file's copy reached the host's file"
    step=file-ro; h run --rm -v "$work/share/in":/in:ro busybox sh -c 'echo x >/in'
    [ "$rc" -ne 0 ] || fail "a :ro bound file took a write"
    step=missing; h run --rm --mount type=bind,source=/no/such,target=/x busybox true; expect_rc 125; expect_err "does not exist"
    ;;

  nbd)
    command -v nbdkit >/dev/null || fail "nbdkit is needed (Debian package nbdkit)"
    load_busybox
    port=$((20000 + $$ % 10000))
    nbdkit --exit-with-parent -f -i 127.0.0.1 -p "$port" memory 256M &
    server=$!
    wait_for bash -c "echo >/dev/tcp/127.0.0.1/$port" 2>/dev/null || fail "nbdkit did not listen"
    step=create; h volume create -d nbd --opt uri="nbd://127.0.0.1:$port" remote; expect_rc 0
    h volume inspect remote; expect_out '"Driver": "nbd"'
    step=data; h run --rm -v remote:/r busybox sh -c 'echo far >/r/f && sync'; expect_rc 0
    h run --rm -v remote:/r busybox cat /r/f; expect_rc 0; expect_out_exactly far
    step=snapshot-refused; h volume snapshot create remote; expect_rc 125; expect_err "NBD server"
    step=server-gone; h run -d --name n1 -v remote:/r busybox sh -c 'sleep 600'; expect_rc 0
    wait_for running n1 || fail "n1 did not start"
    kill -9 "$server"; wait "$server" 2>/dev/null
    h exec n1 sh -c 'dd if=/dev/zero of=/r/big bs=1M count=8 conv=fsync'
    [ "$rc" -ne 0 ] || fail "writes to a vanished NBD server succeeded"
    running n1 || fail "the VMM died when its NBD server went away"
    h rm -f n1; expect_rc 0
    step=bad-uri; h volume create -d nbd --opt uri=http://x bad; expect_rc 125; expect_err "not an NBD URI"
    ;;

  *) fail "unknown group $group" ;;
esac
}

for group in "${@:2}"; do
  step=start
  run_group
  echo "PASS [$group]"
done
