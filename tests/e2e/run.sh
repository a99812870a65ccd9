#!/usr/bin/env bash
# End-to-end tests of `hyper`: images become containers, each in its own microVM with the
# real guest kernel and hyper-init. Run inside tests/rig/run on hosts without hardware
# KVM (CTest does that). Usage: run.sh BUILD_DIR GROUP
#   basics     echo, exit status, env/workdir/user, stdin, the errors and their codes
#   lifecycle  run -d, ps, logs, exec, stop (143), kill, wait, start, rm, inspect, and a
#              SIGKILLed VMM process
#   tty        -t sessions for run and exec (through script(1) for a terminal)
#   layers     whiteouts, hard links, and malicious layers that must stay contained
#   formats    an OCI layout with gzip layers; a missing and a corrupt archive
#   network    --tap: eth0 configured by the init through rtnetlink (address, route, MAC,
#              resolv.conf), a ping to the host end, in a network namespace of its own
#   agent      the agent protocol spoken by an independent client (tests/e2e/agent-probe):
#              malformed messages get errors and the agent keeps serving; export of the
#              writable layer with OCI whiteouts
#   commit     hyper commit of a running container (a new file, a deletion as a whiteout,
#              --change, -m, -a), the committed image run, hyper save read back with
#              tar (no etc/hostname in the layer); hyper commit of the stopped container
#              (refused while its VM lock is held, then its layer from its scratch disk),
#              which then starts again; hyper import of a rootfs tar (gzip, and plain from
#              stdin) run
#   pull       a registry in the VM filled by skopeo: the pulled image has skopeo's digest
#              and runs; a committed container pushed, removed, pulled back and run
#   crash      kill -9 of hyper at fixed points of run, start, stop, rm, commit and the
#              rootfs build (HYPER_CRASH_AT), and of a --rm container's VMM: the next
#              command repairs the state (leftovers swept, names freed, disks rebuilt,
#              orphan blobs pruned) or reports it
#   template   --template: the first run makes the VM template (once per shape), later
#              runs restore it; two restores differ in random bytes, hostname, MAC and
#              address, and have the host's time; exit status, exec, stop and a writable
#              layer work as in a booted VM; a bind mount is refused
#   jail       the VMM's jail, seen from the host: its own mnt/pid/ipc/uts/net namespaces
#              (PID 1 there), no capabilities, no_new_privs, rlimits, a root holding only
#              the container's directory (read-only), its cgroup (a cgroup2 mount of the
#              test's) with memory.max/cpu.max from --memory/--cpus, inspect's Jail;
#              exec/logs/stop/start/rm through it, the cgroup gone after stop and rm, a
#              killed monitor taking its VMM along; the fallback where cgroup v2 is not
#              available warns once and runs
set -uo pipefail
. "$(dirname "$0")/lib.sh"

case $group in
  basics)
    load_busybox
    step=echo; h run --rm busybox echo hello
    expect_rc 0; expect_out_exactly hello
    [ -z "$(ls "$HYPER_ROOT/containers")" ] || fail "--rm left the container behind"
    step=exit-status; h run --rm busybox sh -c 'echo out; echo err >&2; exit 3'
    expect_rc 3; expect_out_exactly out; expect_err '^err$'
    step=env; h run --rm -e FOO=bar -e PATH=/bin busybox sh -c 'echo "$FOO:$PATH:$HOME"'
    expect_rc 0; expect_out_exactly "bar:/bin:/root"
    printf 'A=1\n# comment\nB=two words\n' >"$work/env"
    step=env-file; h run --rm --env-file "$work/env" -e B=override busybox sh -c 'echo "$A/$B"'
    expect_rc 0; expect_out_exactly "1/override"
    step=workdir; h run --rm -w /made/here busybox pwd
    expect_rc 0; expect_out_exactly /made/here
    step=user-name; h run --rm -u hyper busybox id
    expect_rc 0; expect_out "uid=1000(hyper) gid=1000(hyper)"; expect_out "2000(extra)"
    step=user-numeric; h run --rm -u 4242:4343 busybox sh -c 'id -u; id -g; echo $HOME'
    expect_rc 0; expect_out_exactly $'4242\n4343\n/'
    step=user-unknown; h run --rm -u nosuchuser busybox true
    expect_rc 125; expect_err "unable to find user nosuchuser"
    step=hostname; h run --rm --hostname box1 busybox sh -c 'hostname; grep box1 /etc/hosts'
    expect_rc 0; expect_out "^box1$"; expect_out "box1"
    step=cpus-memory; h run --rm --cpus 2 -m 200m busybox sh -c 'nproc; grep MemTotal /proc/meminfo'
    expect_rc 0; expect_out "^2$"
    kib=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' "$work/out")
    [ -n "$kib" ] && [ "$kib" -gt $((150 * 1024)) ] && [ "$kib" -le $((200 * 1024)) ] || fail "MemTotal $kib kB for -m 200m"
    step=stdin; timeout 150 "$hyper" run --rm -i busybox sh -c 'tr a-z A-Z; echo done' \
      <<<"piped through" >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 0; expect_out_exactly $'PIPED THROUGH\ndone'
    step=no-stdin-without-i; h run --rm busybox cat
    expect_rc 0; expect_out_exactly ""
    step=mounts; h run --rm busybox sh -c 'cat /proc/mounts; ls /dev; ls -d /sys/fs/cgroup/cgroup.controllers'
    expect_rc 0
    for m in " /proc proc" " /sys sysfs" " /dev/pts devpts" " /dev/shm tmpfs" " /tmp tmpfs" " /sys/fs/cgroup cgroup2" "^overlay / overlay"; do
      expect_out "$m"
    done
    expect_out "^null$"; expect_out "^urandom$"
    step=writable; h run --rm busybox sh -c 'echo data >/etc/new && cat /etc/new && rm /bin/ls && ! test -e /bin/ls'
    expect_rc 0; expect_out_exactly data
    step=signal-status; h run --rm busybox sh -c 'kill -TERM $$'
    expect_rc 143
    step=missing-image; h run --rm nosuchimage true
    expect_rc 125; expect_err "Unable to find image 'nosuchimage'"
    step=bad-flag; h run --no-such-flag busybox true
    expect_rc 125; expect_err "no-such-flag"
    step=bad-security-opt; h run --rm --security-opt apparmor=unconfined busybox true
    expect_rc 125; expect_err 'invalid --security-opt "apparmor=unconfined"'
    step=bad-memory; h run --rm -m 12k busybox true
    expect_rc 125; expect_err "too small"
    step=not-found; h run --rm busybox /no/such/command
    expect_rc 127; expect_err 'executable file not found\|no such file'
    step=not-found-in-path; h run --rm busybox nosuchcommand
    expect_rc 127; expect_err 'executable file not found in \$PATH'
    step=not-executable; h run --rm busybox /etc/passwd
    expect_rc 126; expect_err "permission denied"
    step=no-container-left; h ps -a -q
    expect_rc 0; expect_out_exactly ""
    ;;

  lifecycle)
    load_busybox
    step=detach; h run -d --name web busybox sh -c 'trap "echo got TERM; exit 143" TERM; echo started; while :; do sleep 0.1; done'
    expect_rc 0
    id=$(cat "$work/out"); [ ${#id} -eq 64 ] || fail "run -d printed '$id', not an ID"
    step=ps; h ps
    expect_rc 0; expect_out "web"; expect_out "Up "
    step=logs; wait_for sh -c "'$hyper' logs web | grep -q started" || fail "logs never showed 'started'"
    step=exec; h exec web sh -c 'echo in-$(hostname); exit 5'
    expect_rc 5; expect_out_exactly "in-${id:0:12}"
    step=exec-env-user-cwd; h exec -e X=1 -u 1000 -w /tmp web sh -c 'echo $X $(id -u) $(pwd)'
    expect_rc 0; expect_out_exactly "1 1000 /tmp"
    step=exec-stdin; timeout 60 "$hyper" exec -i web cat <<<"via exec" >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 0; expect_out_exactly "via exec"
    step=exec-missing; h exec web nosuchcommand
    expect_rc 127; expect_err "executable file not found"
    step=inspect; h inspect web
    expect_rc 0; expect_out '"Running": true'; expect_out "\"Id\": \"$id\""
    expect_out '"SecurityOpt": null'
    step=seccomp; vmm_threads "$(sed -n 's/.*"VmmPid": \([0-9]*\).*/\1/p' "$work/out")"
    # The monitor's own thread stays unconfined; its VM's threads each carry their filter.
    [ "$threads" = $'hyper 0\nhyper 2\nhyper-io0 2\nhyper-io1 2\nhyper-vcpu0 2' ] ||
      fail "monitor threads and seccomp modes: $(echo $threads), expected the VM's event loop, I/O and vCPU threads with 2"
    step=unconfined; h run -d --name loose --security-opt seccomp=unconfined busybox sleep 1000
    expect_rc 0
    h inspect loose; expect_rc 0; expect_out '"seccomp=unconfined"'
    vmm_threads "$(sed -n 's/.*"VmmPid": \([0-9]*\).*/\1/p' "$work/out")"
    [ "$threads" = $'hyper 0\nhyper 0\nhyper-io0 0\nhyper-io1 0\nhyper-vcpu0 0' ] ||
      fail "unconfined monitor threads and seccomp modes: $(echo $threads)"
    h rm -f loose; expect_rc 0
    step=stop; h stop -t 20 web
    expect_rc 0; expect_out_exactly web
    h inspect web; expect_out '"ExitCode": 143'; expect_out '"Status": "exited"'
    h logs web; expect_out "got TERM"
    step=wait; h wait web
    expect_rc 0; expect_out_exactly 143
    step=start; h start web
    expect_rc 0; expect_out_exactly web
    h ps; expect_out web
    step=kill; h kill -s KILL web
    expect_rc 0
    wait_for sh -c "'$hyper' inspect web | grep -q '\"ExitCode\": 137'" || fail "kill -s KILL did not end with 137"
    step=persisted-layer; h run -d --name keep busybox sh -c 'echo kept >/root/file; sleep 1000'
    expect_rc 0
    wait_for sh -c "'$hyper' exec keep cat /root/file | grep -q kept" || fail "the file never appeared"
    h stop -t 1 keep; expect_rc 0
    h start keep; expect_rc 0
    h exec keep cat /root/file; expect_rc 0; expect_out_exactly kept
    step=sigkill-vmm; pid=$("$hyper" inspect keep | sed -n 's/.*"VmmPid": \([0-9]*\).*/\1/p')
    [ -n "$pid" ] && kill -0 "$pid" || fail "no VMM pid in inspect"
    kill -KILL "$pid"
    wait_for sh -c "! kill -0 $pid 2>/dev/null" || fail "the VMM survived SIGKILL"
    h ps -a; expect_rc 0; expect_out "keep"; expect_out "Exited (137)"
    h inspect keep; expect_out '"Running": false'
    step=logs-follow; h run -d --name brief busybox sh -c 'echo one; sleep 2; echo two >&2; sleep 1; echo three'
    expect_rc 0
    h logs -f brief  # returns once the container has exited, with everything it wrote
    expect_rc 0; expect_out_exactly $'one\nthree'; expect_err '^two$'
    h logs --tail 1 brief; expect_out_exactly three
    h rm brief; expect_rc 0
    step=rm-running; h run -d --name busy busybox sleep 1000
    h rm busy; expect_rc 1; expect_err "cannot remove a running container\|You cannot remove a running container"
    h rm -f busy; expect_rc 0
    h rm web keep; expect_rc 0
    h ps -a -q; expect_out_exactly ""
    [ -z "$(ls "$HYPER_ROOT/containers" | grep -v '^\.')" ] || fail "rm left container directories"
    step=missing-container; h exec nosuch true
    expect_rc 1; expect_err "No such container: nosuch"
    ;;

  tty)
    load_busybox
    command -v script >/dev/null || fail "script(1) (bsdutils) is needed for a terminal"
    step=run-tty; timeout 120 script -qec "'$hyper' run --rm -t busybox sh -c 'tty; stty size'" /dev/null >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 0; expect_out "/dev/pts/0"
    step=run-it; printf 'echo typed-$((6*7))\nexit 4\n' | timeout 120 script -qec "'$hyper' run --rm -it busybox sh" /dev/null >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 4; expect_out "typed-42"
    step=exec-tty; h run -d --name tt busybox sleep 1000; expect_rc 0
    timeout 60 script -qec "'$hyper' exec -t tt tty" /dev/null >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 0; expect_out "/dev/pts/"
    h rm -f tt
    step=tty-needs-terminal; h run --rm -it busybox true
    expect_rc 1; expect_err "not a TTY"
    ;;

  layers)
    step=image; mkdir -p "$work/l2/etc" "$work/l2/data" "$work/l2/.wh-test"
    echo replaced >"$work/l2/etc/motd"; echo one >"$work/l2/data/a"; ln "$work/l2/data/a" "$work/l2/data/b"
    : >"$work/l2/etc/.wh.group"  # a whiteout: /etc/group of layer 1 disappears
    mknod "$work/l2/evil-mem" c 1 1   # /dev/mem: inert because the root is nodev
    load_busybox --extra-layer "$work/l2"
    h run --rm busybox sh -c 'cat /etc/motd; test -e /etc/group && echo group-present; stat -c %h /data/a; cat /evil-mem 2>&1 | head -c 200'
    expect_rc 0; expect_out "^replaced$"; expect_out "^2$"; expect_out "Permission denied\|Operation not permitted"
    grep -q group-present "$work/out" && fail "the whiteout did not remove /etc/group"
    step=traversal; mkdir -p "$work/l3"; echo x >"$work/l3/escape"
    tar -C "$work/l3" -cPf "$work/evil.tar" --transform 's,^escape,../../escape,' escape
    "$repo/tests/images/make-test-image" --extra-layer-tar "$work/evil.tar" --tag evil:latest "$work/evil-image.tar" >/dev/null ||
      fail "make-test-image failed"
    # Loading only verifies and stores; the layers are applied at the first run.
    h load -i "$work/evil-image.tar"; expect_rc 0
    h run --rm evil:latest true
    expect_rc 125; expect_err "leaves the root"
    step=symlink-parent; mkdir -p "$work/l4" "$work/l5/link/etc"
    ln -s / "$work/l4/link"; echo contained >"$work/l5/link/etc/escaped"
    tar -C "$work/l5" --no-recursion -cf "$work/l5.tar" link/etc/escaped
    "$repo/tests/images/make-test-image" --extra-layer "$work/l4" --extra-layer-tar "$work/l5.tar" --tag symlinks:latest \
      "$work/symlinks.tar" >/dev/null || fail "make-test-image failed"
    h load -i "$work/symlinks.tar"; expect_rc 0
    h run --rm symlinks cat /etc/escaped
    expect_rc 0; expect_out_exactly contained
    ;;

  formats)
    step=oci; "$repo/tests/images/make-test-image" --format oci --tag oci-box:1 "$work/oci.tar" >/dev/null || fail "make-test-image failed"
    h load -i "$work/oci.tar"; expect_rc 0; expect_out "Loaded image: oci-box:1"
    h run --rm oci-box:1 echo from-oci; expect_rc 0; expect_out_exactly from-oci
    h images; expect_rc 0; expect_out "oci-box"
    step=missing-archive; h load -i "$work/nothing.tar"; expect_rc 1; expect_err "nothing.tar"
    step=corrupt-archive; head -c 3000 "$work/oci.tar" >"$work/cut.tar"; h load -i "$work/cut.tar"
    expect_rc 1
    [ -s "$work/err" ] || fail "no message for a truncated archive"
    ;;

  network)
    load_busybox
    command -v ip >/dev/null || fail "ip (iproute2) is needed"
    modprobe tun 2>/dev/null || true  # the rig's kernel has it as a module
    ns=hyper-e2e-$$
    ip netns add "$ns" || fail "could not create a network namespace"
    trap 'ip netns del "$ns" 2>/dev/null; pkill -KILL -f "$HYPER_ROOT" 2>/dev/null; rm -rf "$work"' EXIT
    ip -n "$ns" tuntap add dev hyt0 mode tap && ip -n "$ns" addr add 10.0.2.1/24 dev hyt0 &&
      ip -n "$ns" link set hyt0 up || fail "could not make the tap"
    hn() { echo "[$group/$step] (netns) hyper $*" >&2; timeout 150 ip netns exec "$ns" "$hyper" "$@" >"$work/out" 2>"$work/err" </dev/null; rc=$?; }
    step=tap; hn run --rm --tap hyt0,ip=10.0.2.15/24,gw=10.0.2.1,mac=02:00:00:00:00:15,dns=10.0.2.1 busybox \
      sh -c 'ip -4 addr show eth0; ip route; cat /etc/resolv.conf /sys/class/net/eth0/address; ping -c 1 -W 10 10.0.2.1'
    expect_rc 0; expect_out "inet 10.0.2.15/24"; expect_out "default via 10.0.2.1"; expect_out "nameserver 10.0.2.1"
    expect_out "02:00:00:00:00:15"; expect_out "1 packets received"
    step=bad-tap; hn run --rm --tap hyt0,ip=10.0.2.15 busybox true
    expect_rc 125; expect_err "prefix length"
    step=missing-tap; hn run --rm --tap nosuchtap,ip=10.0.2.15/24 busybox true
    expect_rc 125; expect_err "nosuchtap"
    ;;

  template)
    load_busybox
    templates() { ls "$HYPER_ROOT"/templates/*/vm.snap 2>/dev/null | wc -l; }
    step=first; h run --rm --template --network none busybox sh -c 'echo ok; exit 3'
    expect_rc 3; expect_out_exactly ok; expect_err "made VM template"
    [ "$(templates)" -eq 1 ] || fail "expected one template, found $(templates)"
    probe='head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n"; echo; hostname; date +%s; cat /sys/class/net/eth0/address; ip -4 -o addr show eth0 | awk "{print \$4}"'
    # One restore stays up while the other runs: they are on the network at once.
    step=identity-1; h run -d --rm --template --name first busybox sh -c "$probe; sleep 600"
    expect_rc 0
    wait_for sh -c "'$hyper' logs first | grep -q /" || fail "the first restored container printed nothing"
    "$hyper" logs first >"$work/first" 2>&1
    mapfile -t seen_1 <"$work/first"
    step=identity-2; h run --rm --template busybox sh -c "$probe"
    expect_rc 0; grep -q "made VM template" "$work/err" && fail "the template was made again"
    mapfile -t seen_2 <"$work/out"
    h rm -f first; expect_rc 0
    [ "$(templates)" -eq 2 ] || fail "a NIC makes another shape: expected two templates, found $(templates)"
    step=identity
    [ "${seen_1[0]}" != "${seen_2[0]}" ] && [ ${#seen_1[0]} -eq 32 ] || fail "two restores read the same random bytes: ${seen_1[0]}"
    [ "${seen_1[1]}" != "${seen_2[1]}" ] || fail "two restores have one hostname: ${seen_1[1]}"
    [ "${seen_1[3]}" != "${seen_2[3]}" ] || fail "two restores have one MAC: ${seen_1[3]}"
    [ "${seen_1[4]}" != "${seen_2[4]}" ] || fail "two restores have one address: ${seen_1[4]}"
    # The MAC is the endpoint's (02:42 and the address), not the template's random one.
    for seen in "${seen_1[3]} ${seen_1[4]}" "${seen_2[3]} ${seen_2[4]}"; do
      set -- $seen
      IFS=./ read -r a b c d _ <<<"$2"
      [ "$1" = "$(printf '02:42:%02x:%02x:%02x:%02x' "$a" "$b" "$c" "$d")" ] || fail "MAC $1 is not the endpoint's for $2"
    done
    skew=$(($(date +%s) - seen_2[2]))
    [ "${skew#-}" -le 30 ] || fail "the restored guest's clock is off by ${skew} s"
    step=detached; h run -d --template --network none --name tpl busybox sh -c 'echo data >/kept; echo started; sleep 600'
    expect_rc 0
    wait_for sh -c "'$hyper' logs tpl | grep -q started" || fail "the restored container never started"
    step=exec; h exec tpl cat /kept; expect_rc 0; expect_out_exactly data
    step=stop; h stop -t 2 tpl; expect_rc 0
    h inspect tpl; expect_rc 0; expect_out '"ExitCode": 143'
    step=start; h start tpl; expect_rc 0
    wait_for sh -c "'$hyper' exec tpl cat /kept | grep -q data" || fail "the writable layer did not survive a restart"
    h rm -f tpl; expect_rc 0
    step=bind; h run --rm --template --network none -v "$work:/mnt" busybox true
    expect_rc 125; expect_err "cannot start from a template"
    ;;

  agent)
    load_busybox
    step=run; h run -d --name probe busybox sh -c 'mkdir -p /root/new && echo added >/root/new/file && rm /etc/motd &&
      rm -rf /home/hyper && mkdir /home/hyper && echo fresh >/home/hyper/only && touch /tmp/ready-flag-ignored && sleep 1000'
    expect_rc 0
    id=$(cat "$work/out")
    sock="$HYPER_ROOT/containers/$id/vsock.sock"
    wait_for sh -c "'$hyper' exec probe cat /root/new/file | grep -q added" || fail "the container never wrote its file"
    step=hostile; python3 "$repo/tests/e2e/agent-probe" "$sock" hostile >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 0; expect_out "ok: stats still served"
    step=still-serving; h exec probe echo alive; expect_rc 0; expect_out_exactly alive
    step=export; python3 "$repo/tests/e2e/agent-probe" "$sock" export "$work/layer.tar" >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 0
    tar -tvf "$work/layer.tar" >"$work/out" 2>"$work/err" || fail "the exported layer is not a tar archive"
    expect_out " root/new/file$"; expect_out " etc/.wh.motd$"; expect_out " home/hyper/.wh..wh..opq$"
    expect_out " home/hyper/only$"
    grep -q "tmp/ready-flag" "$work/out" && fail "/tmp is a tmpfs of its own: it must not be in the layer"
    tar -xOf "$work/layer.tar" root/new/file >"$work/out"; expect_out_exactly added
    h rm -f probe; expect_rc 0
    ;;

  commit)
    load_busybox
    step=run; h run -d --name c1 -e RUNENV=kept busybox sleep 1000
    expect_rc 0
    cid=$(cat "$work/out")
    step=changes; h exec c1 sh -c 'echo committed-content >/new && rm /etc/motd && mkdir /root/dir && echo in-dir >/root/dir/f'
    expect_rc 0
    step=commit; h commit -a 'Tess Ter <t@example.com>' -c 'CMD ["cat","/new"]' -m msg c1 committed:1
    expect_rc 0
    image=$(cat "$work/out")
    [[ $image =~ ^sha256:[0-9a-f]{64}$ ]] || fail "commit printed '$image', not an image ID"
    step=still-running; h exec c1 cat /new; expect_rc 0; expect_out_exactly committed-content
    step=run-committed; h run --rm committed:1
    expect_rc 0; expect_out_exactly committed-content
    # The container's environment is committed with it, as Docker does.
    step=whiteout; h run --rm committed:1 sh -c 'test -e /etc/motd && echo motd-present; cat /root/dir/f; echo $RUNENV'
    expect_rc 0; expect_out_exactly $'in-dir\nkept'
    step=images; h images; expect_rc 0; expect_out "^committed .* ${image:7:12}"
    step=inspect; h image inspect committed:1; expect_rc 0
    expect_out "\"Id\": \"$image\""; expect_out '"Author": "Tess Ter <t@example.com>"'
    step=saved-config; h save -o "$work/committed.tar" committed:1; expect_rc 0
    python3 - "$work/committed.tar" >"$work/out" 2>"$work/err" <<'PY' || fail "the saved archive does not hold the commit"
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as tar:
    entry = json.load(tar.extractfile("manifest.json"))[0]
    config = json.load(tar.extractfile(entry["Config"]))
    layer = tarfile.open(fileobj=tar.extractfile(entry["Layers"][-1])).getnames()
last = config["history"][-1]
print(entry["RepoTags"], len(entry["Layers"]), last["comment"], last["author"], config["container"][:12],
      config["config"]["Cmd"], "new" in layer, "etc/.wh.motd" in layer, "etc/hostname" in layer)
PY
    expect_out_exactly "['committed:1'] 2 msg Tess Ter <t@example.com> ${cid:0:12} ['cat', '/new'] True True False"
    step=stop; h stop -t 1 c1; expect_rc 0
    # A stand-in for another VM on the container's disks (a commit or a starting monitor)
    # holds its lock: start and commit refuse rather than share the scratch disk, and rm
    # refuses rather than delete it under the VM.
    step=busy; python3 -c 'import fcntl, sys, time
lock = open(sys.argv[1], "a"); fcntl.flock(lock, fcntl.LOCK_EX); open(sys.argv[2], "w").write("locked")
time.sleep(600)' "$HYPER_ROOT/containers/$cid/vm.lock" "$work/locked" &
    holder=$!
    wait_for test -s "$work/locked" || fail "the stand-in never took the container's lock"
    h start c1; expect_rc 125; expect_err "is busy"
    h commit c1 busy:1; expect_rc 1; expect_err "is busy"
    h rm c1; expect_rc 1; expect_err "is busy"
    kill "$holder"; wait "$holder" 2>/dev/null
    step=commit-stopped; h commit c1 stopped:1; expect_rc 0
    [[ $(cat "$work/out") =~ ^sha256:[0-9a-f]{64}$ ]] || fail "commit printed '$(cat "$work/out")', not an image ID"
    step=run-stopped; h run --rm stopped:1 cat /new; expect_rc 0; expect_out_exactly committed-content
    step=stopped-layer; h save -o "$work/stopped.tar" stopped:1; expect_rc 0
    python3 - "$work/stopped.tar" >"$work/out" 2>"$work/err" <<'PY' || fail "the saved archive does not hold the commit"
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as tar:
    entry = json.load(tar.extractfile("manifest.json"))[0]
    layer = tarfile.open(fileobj=tar.extractfile(entry["Layers"][-1])).getnames()
print(len(entry["Layers"]), "new" in layer, "etc/.wh.motd" in layer, "root/dir/f" in layer,
      [name for name in layer if name in ("etc/hostname", "etc/hosts", "etc/resolv.conf")])
PY
    expect_out_exactly "2 True True True []"
    # The commit left the container stopped, its disk intact and its lock free.
    step=restart; h start c1; expect_rc 0
    h exec c1 cat /new; expect_rc 0; expect_out_exactly committed-content
    h rm -f c1; expect_rc 0
    # The busybox image's own layer as a root filesystem: the same diff_id, so the
    # imported images share its flattened rootfs and need no builder VM.
    step=import; layer=$(tar -tf "$work/busybox.tar" | grep 'layer.tar$' | head -n 1)
    tar -xOf "$work/busybox.tar" "$layer" >"$work/rootfs.tar" || fail "no layer in the busybox archive"
    gzip -c "$work/rootfs.tar" >"$work/rootfs.tar.gz"
    h import -c 'CMD ["/bin/sh","-c","echo imported-ok; cat /etc/motd"]' -c 'ENV PATH=/bin' -m 'from e2e' \
      "$work/rootfs.tar.gz" imported:1
    expect_rc 0
    [[ $(cat "$work/out") =~ ^sha256:[0-9a-f]{64}$ ]] || fail "import printed '$(cat "$work/out")', not an image ID"
    h run --rm imported:1; expect_rc 0; expect_out_exactly $'imported-ok\noriginal'
    step=import-stdin; timeout 150 "$hyper" import - imported:2 <"$work/rootfs.tar" >"$work/out" 2>"$work/err"; rc=$?
    expect_rc 0
    h run --rm imported:2 /bin/echo via-stdin; expect_rc 0; expect_out_exactly via-stdin
    step=import-junk; head -c 4096 /dev/urandom >"$work/junk"; h import "$work/junk" junk:1
    expect_rc 1; expect_err "not a tar archive"
    ;;

  pull)
    # A registry inside the test's own VM, on its loopback, filled by skopeo: what hyper
    # pulls from it has skopeo's digest and runs. lib.sh owns the EXIT trap from here on.
    source "$repo/tests/registry/lib.sh"
    reg_on_exit 'pkill -KILL -f "$HYPER_ROOT" 2>/dev/null; rm -rf "$work"'
    # The rig's VM leaves its loopback down; on a host it is up already.
    [ "$(cat /sys/class/net/lo/operstate 2>/dev/null)" = unknown ] || ip link set lo up || fail "cannot bring lo up"
    step=registry; registry_start plain
    "$repo/tests/images/make-test-image" --tag pulled/box:1 "$work/img.tar" >/dev/null || fail "make-test-image failed"
    skopeo_push "docker-archive:$work/img.tar" "$REGISTRY/pulled/box:1"
    digest=$(skopeo_digest "$REGISTRY/pulled/box:1")
    step=pull; h --insecure-registry "$REGISTRY" pull "$REGISTRY/pulled/box:1"
    expect_rc 0; expect_out "^Digest: $digest\$"
    step=run; h run --rm "$REGISTRY/pulled/box:1" echo pulled and running
    expect_rc 0; expect_out_exactly "pulled and running"
    step=commit-push
    h run -d --name c1 "$REGISTRY/pulled/box:1" sh -c 'echo committed >/note; sleep 600'; expect_rc 0
    wait_for sh -c "'$hyper' exec c1 cat /note 2>/dev/null | grep -q committed" || fail "the container never wrote /note"
    h commit -c 'CMD ["cat","/note"]' c1 "$REGISTRY/pulled/committed:1"; expect_rc 0
    h --insecure-registry "$REGISTRY" push "$REGISTRY/pulled/committed:1"; expect_rc 0
    h rm -f c1; expect_rc 0
    h rmi "$REGISTRY/pulled/committed:1"; expect_rc 0
    h --insecure-registry "$REGISTRY" pull "$REGISTRY/pulled/committed:1"; expect_rc 0
    h run --rm "$REGISTRY/pulled/committed:1"
    expect_rc 0; expect_out_exactly "committed"
    ;;

  crash)
    # kill -9 at fixed points of run, start, stop, rm and commit (HYPER_CRASH_AT, see
    # runtime/crash_point.hpp): the next command finds a state it repairs, or reports.
    load_busybox
    leftovers() { ls -A "$HYPER_ROOT/containers" | grep -E '^\.(creating|removing)-'; }
    step=create; HYPER_CRASH_AT=container-staged h run -d --name c1 busybox sleep 600; expect_rc 137
    leftovers >/dev/null || fail "the killed create left no staging directory (the crash point did not fire?)"
    h ps -a -q; expect_rc 0; expect_out_exactly ""
    ! leftovers >/dev/null || fail "the next command left the staging directory: $(leftovers)"
    h run -d --name c1 busybox sh -c 'echo kept >/root/file; sleep 600'; expect_rc 0  # the name is free
    wait_for sh -c "'$hyper' exec c1 cat /root/file 2>/dev/null | grep -q kept" || fail "c1 never wrote its file"
    step=stop; HYPER_CRASH_AT=stop-signalled h stop -t 20 c1; expect_rc 137
    # The signal went out before the stop command died: the container ends all the same.
    wait_for sh -c "'$hyper' ps -a | grep c1 | grep -q 'Exited (143)'" || fail "c1 did not end after the signal"
    step=monitor; HYPER_CRASH_AT=monitor-running h start c1; expect_rc 125
    expect_err "monitor died"
    h ps -a; expect_rc 0; expect_out "Exited (137)"
    h start c1; expect_rc 0
    h exec c1 cat /root/file; expect_rc 0; expect_out_exactly kept
    step=scratch; HYPER_CRASH_AT=scratch-disk-copied h run -d --name c2 busybox sleep 600; expect_rc 125
    c2=$("$hyper" inspect c2 | sed -n 's/.*"Id": "\([0-9a-f]*\)".*/\1/p' | head -n1)
    [ -e "$HYPER_ROOT/containers/$c2/rw.ext4.tmp" ] || fail "no half-made scratch disk (the crash point did not fire?)"
    [ ! -e "$HYPER_ROOT/containers/$c2/rw.ext4" ] || fail "a half-made scratch disk became the container's disk"
    h start c2; expect_rc 0  # a fresh scratch disk, not the half-made one
    h exec c2 sh -c 'echo scratch-ok >/root/f; cat /root/f'; expect_rc 0; expect_out_exactly scratch-ok
    step=commit; HYPER_CRASH_AT=commit-blobs-stored h commit c1 crashed:1; expect_rc 137
    h images -q crashed; expect_rc 0; expect_out_exactly ""
    h image prune -f; expect_rc 0; expect_out "Total reclaimed space"
    grep -q "Total reclaimed space: 0B" "$work/out" && fail "prune found nothing the killed commit left"
    [ -z "$(ls -A "$HYPER_ROOT/images/tmp" 2>/dev/null)" ] || fail "prune left staging in images/tmp"
    h commit c1 crashed:1; expect_rc 0
    step=rootfs; HYPER_CRASH_AT=rootfs-built h run --rm crashed:1 cat /root/file; expect_rc 137
    h run --rm crashed:1 cat /root/file; expect_rc 0; expect_out_exactly kept  # built again
    step=rm; h rm -f c2; expect_rc 0
    h stop -t 1 c1; expect_rc 0
    HYPER_CRASH_AT=container-unlisted h rm c1; expect_rc 137
    h ps -a -q; expect_rc 0; expect_out_exactly ""
    ! leftovers >/dev/null || fail "the removed container's remains are still there: $(leftovers)"
    h rm c1; expect_rc 1; expect_err "No such container: c1"
    # A --rm container's VMM killed (its monitor records the end and removes it), and its
    # monitor killed (the VMM goes with it; the next look removes the container).
    step=rm-auto; h run -d --rm --name c3 busybox sleep 600; expect_rc 0
    pid=$("$hyper" inspect c3 | sed -n 's/.*"VmmPid": \([0-9]*\).*/\1/p')
    [ -n "$pid" ] && kill -KILL "$pid" || fail "no VMM pid for c3"
    wait_for sh -c "! kill -0 $pid 2>/dev/null" || fail "the VMM survived SIGKILL"
    wait_for sh -c "[ -z \"\$('$hyper' ps -a -q)\" ]" || fail "the --rm container stayed after its VMM was killed"
    h run -d --rm --name c4 busybox sleep 600; expect_rc 0
    c4=$(cat "$work/out")
    pid=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "$HYPER_ROOT/containers/$c4/state.json")
    [ -n "$pid" ] && kill -KILL "$pid" || fail "no monitor pid for c4"
    wait_for sh -c "! kill -0 $pid 2>/dev/null" || fail "the monitor survived SIGKILL"
    h ps -a -q; expect_rc 0; expect_out_exactly ""  # a killed --rm container is removed by the next look
    [ ! -e "$HYPER_ROOT/containers/$c4" ] || fail "the killed --rm container's directory is still there"
    h run --rm --name c3 busybox echo name-free; expect_rc 0; expect_out_exactly name-free
    [ -z "$(ls -A "$HYPER_ROOT/containers" | grep -v '^\.names$')" ] || fail "leftovers: $(ls -A "$HYPER_ROOT/containers")"
    ;;

  jail)
    load_busybox
    # A cgroup v2 hierarchy of our own under $work, so the test needs nothing of the host's.
    cgmount="$work/cgroup2"; mkdir -p "$cgmount"
    mount -t cgroup2 none "$cgmount" || fail "could not mount cgroup2"
    reg_cleanup() { rmdir "$cgmount"/hyper-e2e/* "$cgmount/hyper-e2e" 2>/dev/null; umount "$cgmount" 2>/dev/null; }
    trap 'pkill -KILL -f "$HYPER_ROOT" 2>/dev/null; sleep 0.5; reg_cleanup; rm -rf "$work"' EXIT
    for c in cpu memory; do grep -qw "$c" "$cgmount/cgroup.controllers" || fail "cgroup2 offers no $c controller"; done
    export HYPER_CGROUP_ROOT="$cgmount/hyper-e2e"
    field() { sed -n "s/.*\"$1\": \"*\([^\",]*\)\"*,*\$/\1/p" "$work/out" | head -n 1; }
    step=run; h run -d --name jailed --memory 256m --cpus 1 busybox sh -c 'echo up; exec sleep 1000'
    expect_rc 0
    id=$(cat "$work/out"); dir="$HYPER_ROOT/containers/$id"; group_dir="$HYPER_CGROUP_ROOT/$id"
    [ ! -s "$work/err" ] || fail "run -d warned: $(cat "$work/err")"
    h inspect jailed; vmm=$(field VmmPid); root_how=$(field Root)
    [ -n "$vmm" ] && [ "$vmm" -gt 0 ] && kill -0 "$vmm" || fail "no live VMM pid in inspect"
    monitor=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "$dir/state.json")
    [ "$monitor" != "$vmm" ] && [ "$(awk '/^PPid/ {print $2}' "/proc/$vmm/status")" = "$monitor" ] ||
      fail "the VMM ($vmm) is not the monitor's ($monitor) child"
    step=namespaces
    for ns in mnt pid ipc uts net; do
      [ "$(readlink "/proc/$vmm/ns/$ns")" != "$(readlink "/proc/self/ns/$ns")" ] || fail "the VMM shares the host's $ns namespace"
      [ "$(readlink "/proc/$monitor/ns/$ns")" = "$(readlink "/proc/self/ns/$ns")" ] || fail "the monitor left the host's $ns namespace"
    done
    grep -Eq "^NSpid:[[:space:]]+$vmm[[:space:]]+1\$" "/proc/$vmm/status" || fail "the VMM is not PID 1 of its namespace: $(grep NSpid "/proc/$vmm/status")"
    step=privileges
    for set in CapInh CapPrm CapEff CapBnd CapAmb; do
      grep -Eq "^$set:[[:space:]]+0000000000000000\$" "/proc/$vmm/status" || fail "$(grep "^$set" "/proc/$vmm/status") (want none)"
    done
    grep -Eq '^NoNewPrivs:[[:space:]]+1$' "/proc/$vmm/status" || fail "no_new_privs is not set"
    grep -Eq '^Max core file size +0 +0 ' "/proc/$vmm/limits" || fail "RLIMIT_CORE: $(grep core "/proc/$vmm/limits")"
    grep -Eq '^Max open files +4096 +4096 ' "/proc/$vmm/limits" || fail "RLIMIT_NOFILE: $(grep 'open files' "/proc/$vmm/limits")"
    step=root
    # Only the directories leading to the container's directory, and that directory.
    listing=$(cd "/proc/$vmm/root" && find . -path "./${dir#/}" -prune -print -o -print | sort)
    expected=$(p=.; echo .; for part in $(echo "${dir#/}" | tr / ' '); do p="$p/$part"; echo "$p"; done | sort)
    [ "$listing" = "$expected" ] || fail "the VMM's root holds: $listing"
    [ -e "/proc/$vmm/root$dir/state.json" ] && [ -S "/proc/$vmm/root$dir/vsock.sock" ] || fail "the container's directory is not in the VMM's root"
    ! touch "/proc/$vmm/root$dir/written-by-the-vmm" 2>/dev/null || fail "the VMM can write in the container's directory"
    ! touch "/proc/$vmm/root/new" 2>/dev/null || fail "the VMM's root is writable"
    [ ! -e "/proc/$vmm/root/dev" ] && [ ! -e "/proc/$vmm/root/proc" ] || fail "the VMM's root has /dev or /proc"
    # After pivot_root two mounts are left, the tmpfs root and the container's directory
    # (a chroot leaves the host's under them, unreachable).
    if [ "$root_how" != chroot ]; then
      [ "$(wc -l <"/proc/$vmm/mountinfo")" = 2 ] || fail "the VMM sees these mounts: $(cat "/proc/$vmm/mountinfo")"
    fi
    for fd in "/proc/$vmm/fd"/*; do
      [ ! -d "$fd" ] || fail "the VMM holds a directory fd: $fd -> $(readlink "$fd")"
    done
    step=cgroup
    [ "$(cat "/proc/$vmm/cgroup")" = "0::/hyper-e2e/$id" ] || fail "the VMM is in $(cat "/proc/$vmm/cgroup")"
    [ "$(cat "$group_dir/memory.max")" = $(((256 + 64 + 4) * 1024 * 1024)) ] || fail "memory.max is $(cat "$group_dir/memory.max")"
    [ "$(cat "$group_dir/cpu.max")" = "100000 100000" ] || fail "cpu.max is $(cat "$group_dir/cpu.max")"
    echo "[$group/$step] VMM memory.current $(cat "$group_dir/memory.current") peak $(cat "$group_dir/memory.peak" 2>/dev/null) of max $(cat "$group_dir/memory.max")" >&2
    step=inspect; h inspect jailed
    expect_out '"Memory": 268435456'; expect_out '"NanoCpus": 1000000000'
    expect_out '"Enforced": true'; expect_out "\"Cgroup\": \"$group_dir\""
    expect_out "\"MemoryMax\": \"$(((256 + 64 + 4) * 1024 * 1024))\""; expect_out '"CpuMax": "100000 100000"'
    expect_out '"Root": "pivot_root"\|"Root": "chroot"'; expect_out '"NoNewPrivs": true'
    echo "[$group/$step] the VMM entered its root by $(field Root)" >&2
    step=exec; h exec jailed sh -c 'echo in-$(hostname)'
    expect_rc 0; expect_out_exactly "in-${id:0:12}"
    step=logs; h logs jailed; expect_rc 0; expect_out_exactly up
    step=stop; h stop -t 1 jailed; expect_rc 0
    h inspect jailed; expect_out '"Status": "exited"'; expect_out '"ExitCode": 137\|"ExitCode": 143'
    [ ! -e "$group_dir" ] || fail "stop left the cgroup"
    [ ! -e "$dir/vsock.sock" ] || fail "stop left the vsock socket"
    step=start; h start jailed; expect_rc 0
    h inspect jailed; vmm2=$(field VmmPid)
    [ -n "$vmm2" ] && [ "$vmm2" != "$vmm" ] && [ "$(cat "/proc/$vmm2/cgroup")" = "0::/hyper-e2e/$id" ] || fail "the restarted VMM is not in its cgroup"
    h exec jailed echo again; expect_rc 0; expect_out_exactly again
    step=rm; h rm -f jailed; expect_rc 0
    [ ! -e "$group_dir" ] || fail "rm -f left the cgroup"
    [ ! -e "$dir" ] || fail "rm -f left the container's directory"
    step=kill-monitor; h run -d --name orphan busybox sleep 1000; expect_rc 0
    id=$(cat "$work/out"); dir="$HYPER_ROOT/containers/$id"
    h inspect orphan; vmm=$(field VmmPid); monitor=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "$dir/state.json")
    kill -KILL "$monitor"
    wait_for sh -c "! kill -0 $vmm 2>/dev/null" || fail "the VMM outlived its monitor"
    h ps -a; expect_out "Exited (137)"
    [ -d "$HYPER_CGROUP_ROOT/$id" ] || fail "expected the killed monitor to leave its cgroup for rm"
    h rm orphan; expect_rc 0
    [ ! -e "$HYPER_CGROUP_ROOT/$id" ] || fail "rm left the killed monitor's cgroup"
    step=memory-filled; h run -d --name filler --memory 128m busybox sh -c 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=100 2>/dev/null; echo filled; sleep 1000'
    expect_rc 0; id=$(cat "$work/out")
    # The guest's RAM nearly all touched: the VMM's overhead must still fit under memory.max.
    wait_for sh -c "'$hyper' logs filler | grep -q filled" || fail "the guest never filled its memory (OOM-killed VMM?)"
    echo "[$group/$step] VMM memory.peak $(cat "$HYPER_CGROUP_ROOT/$id/memory.peak" 2>/dev/null) of max $(cat "$HYPER_CGROUP_ROOT/$id/memory.max"), oom_kill $(sed -n 's/^oom_kill //p' "$HYPER_CGROUP_ROOT/$id/memory.events")" >&2
    [ "$(sed -n 's/^oom_kill //p' "$HYPER_CGROUP_ROOT/$id/memory.events")" = 0 ] || fail "the cgroup OOM-killed something"
    h rm -f filler; expect_rc 0
    step=attached; h run --rm --memory 128m --cpus 2 busybox sh -c 'cat /proc/self/status | grep -c . >/dev/null; echo attached'
    expect_rc 0; expect_out_exactly attached
    [ ! -s "$work/err" ] || fail "an attached run warned: $(cat "$work/err")"
    step=fallback-attached; HYPER_CGROUP_ROOT="$work/plain/hyper" h run --rm busybox echo still runs
    expect_rc 0; expect_out_exactly "still runs"
    expect_err "warning: the container's memory and CPU limits are not enforced: .*not on a cgroup v2 file system"
    [ "$(grep -c . "$work/err")" = 1 ] || fail "the fallback printed more than one line"
    step=fallback-detached; HYPER_CGROUP_ROOT="$work/plain/hyper" h run -d --name free busybox sleep 1000
    expect_rc 0; expect_err "limits are not enforced"
    h inspect free; expect_out '"Enforced": false'; expect_out '"Reason": ".*not on a cgroup v2 file system'
    vmm=$(field VmmPid)
    grep -Eq '^CapEff:[[:space:]]+0000000000000000$' "/proc/$vmm/status" || fail "without limits the VMM is still jailed"
    h rm -f free; expect_rc 0
    ;;

  *) echo "unknown group $group" >&2; exit 2 ;;
esac
echo "PASS [$group]"
