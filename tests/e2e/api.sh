#!/usr/bin/env bash
# End-to-end tests of hyperd, the Docker Engine API, driven by real clients, inside
# tests/rig/run (or a host with hardware KVM, as root). Usage: api.sh BUILD_DIR GROUP...
#   docker   the docker CLI (28.x) pointed at hyperd: version, info, pull from a registry
#            on the VM's loopback, images, tag, run --rm (output, exit status, stderr
#            apart), run -i with piped input, run -it and exec -it through a pty
#            (script), run -d -p served on 127.0.0.1, ps, logs -f / --tail / -t, exec, top,
#            inspect, stop, start, restart, kill, rm -f, network create + run --network,
#            volume create + run -v, events, errors (no such image/container: the
#            daemon's message, non-zero status), image prune,
#            run -i over TCP with TLS (client certificates; none, or plain HTTP, refused),
#            a hyperd killed with -9 and restarted: the running container is found
#            again and still serves; usage metering of a container whose monitor is
#            killed with -9, through `hyper usage` and /hyper/usage
#   python   the same scenarios through python3-docker (Debian's Docker SDK), an
#            independent client of the API: ping, version, info, pull, tag, images, run
#            (output, stderr, exit status), run and exec with a tty, run -d with a published
#            port served on 127.0.0.1, inspect, logs follow, wait, exec, stop, rm -f,
#            volumes, networks, errors
set -uo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || fail "hyperd's containers need root here (networks, the VMM's jail): run as root or in tests/rig/run"
command -v docker >/dev/null || fail "no docker CLI on PATH (these machines come with docker 28.x; elsewhere install docker-ce-cli)"
/usr/bin/python3 -c 'import docker' 2>/dev/null || fail "no python3-docker for /usr/bin/python3 (scripts/setup installs it)"
hyperd_bin="$build/cli/hyperd"
sock="$work/hyperd.sock"
export DOCKER_HOST="unix://$sock" DOCKER_CONFIG="$work/docker-config"
bb=$(command -v busybox) || fail "busybox is needed (busybox-static)"
on_fail() { echo "--- hyperd.log ---"; tail -n 40 "$work/hyperd.log"; "$hyper" ps -a; }

# The registry's helpers own the EXIT trap from here on.
source "$repo/tests/registry/lib.sh"
reg_on_exit 'pkill -KILL -f "$HYPER_ROOT" 2>/dev/null; rm -rf "$work"'
[ "$(cat /sys/class/net/lo/operstate 2>/dev/null)" = unknown ] || ip link set lo up || fail "cannot bring lo up"

# A CA of the test's own, hyperd's certificate for 127.0.0.1, and a client's.
make_certs() {
  local dir=$work/tls
  mkdir -p "$dir" && cd "$dir" || fail "no $dir"
  {
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=hyper-test-ca &&
    openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj /CN=127.0.0.1 &&
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext &&
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server-cert.pem -days 2 -extfile server.ext &&
    openssl req -newkey rsa:2048 -nodes -keyout key.pem -out client.csr -subj /CN=client &&
    printf 'extendedKeyUsage=clientAuth\n' >client.ext &&
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 2 -extfile client.ext
  } >/dev/null 2>&1 || fail "openssl could not make the test certificates"
  cd - >/dev/null || true
}
make_certs
tls_port=$((20000 + RANDOM % 20000))

# hyperd on a Unix socket and, with TLS and client certificates, on 127.0.0.1:$tls_port.
start_hyperd() {
  "$hyperd_bin" --root "$HYPER_ROOT" -H "unix://$sock" -H "tcp://127.0.0.1:$tls_port" --tlsverify \
    --tlscacert "$work/tls/ca.pem" --tlscert "$work/tls/server-cert.pem" --tlskey "$work/tls/server-key.pem" \
    --insecure-registry "$REGISTRY" >>"$work/hyperd.log" 2>&1 &
  hyperd_pid=$!
  # Answering, not just there: a killed hyperd leaves its socket file behind.
  wait_for curl -sf -o /dev/null --unix-socket "$sock" http://hyperd/_ping || fail "hyperd did not answer on $sock"
}

# d ARGS...: the docker CLI with a time bound, like h; its input from $d_in (default
# /dev/null). In the nested VM a guest now and then triple-faults at boot on its own (the
# emulated SVM under it, tests/rig/README.md); such a command runs once more, and says so.
d() {
  echo "[$group/$step] docker $*" >&2
  d_once "$@"
  if [ "${HYPER_RIG:-}" = nested ] && grep -q 'triple-faulted' "$work/err"; then
    echo "[$group/$step] the guest triple-faulted in the nested VM: once more" >&2
    local arg prev=""
    for arg in "$@"; do [ "$prev" = --name ] && docker rm -f "$arg" >/dev/null 2>&1; prev=$arg; done
    d_once "$@"
  fi
}
d_once() {
  timeout -k 5 150 docker "$@" >"$work/out" 2>"$work/err" <"${d_in:-/dev/null}"
  rc=$?
  [ "$rc" -ne 124 ] || fail "docker $* did not finish within 150 s"
}
# d_tty COMMAND: a docker command line run under a pseudo-terminal (script), output in $work/out.
d_tty() {
  echo "[$group/$step] (pty) $1" >&2
  timeout -k 5 150 script -qec "$1" /dev/null >"$work/out" 2>"$work/err" </dev/null
  rc=$?
  [ "$rc" -ne 124 ] || fail "$1 did not finish within 150 s"
}

fetch() { timeout 10 "$bb" wget -q -O- "$1" 2>/dev/null; }
serves() { local deadline=$((SECONDS + 60)); until [ "$(fetch "$1")" = "$2" ]; do [ "$SECONDS" -lt "$deadline" ] || return 1; sleep 0.2; done; }

step=registry; registry_start plain
"$repo/tests/images/make-test-image" --tag api/box:1 "$work/img.tar" >/dev/null || fail "make-test-image failed"
skopeo_push "docker-archive:$work/img.tar" "$REGISTRY/api/box:1"
step=hyperd; start_hyperd

docker_group() {
  step=version; d version --format '{{.Server.APIVersion}} {{.Client.APIVersion}}'; expect_rc 0; expect_out_exactly "1.47 1.47"
  step=info; d info --format '{{.Driver}} {{.Containers}}'; expect_rc 0; expect_out_exactly "hyper-microvm 0"
  step=pull; d pull "$REGISTRY/api/box:1"; expect_rc 0; expect_out "Downloaded newer image for $REGISTRY/api/box:1"
  d pull "$REGISTRY/api/box:1"; expect_rc 0; expect_out "Image is up to date"
  step=tag; d tag "$REGISTRY/api/box:1" busybox:latest; expect_rc 0
  step=images; d images --format '{{.Repository}}:{{.Tag}}'; expect_rc 0; expect_out "^busybox:latest$"; expect_out "^$REGISTRY/api/box:1$"
  d image inspect -f '{{.Os}} {{len .RootFS.Layers}}' busybox; expect_rc 0; expect_out "^linux [1-9]"

  step=run-rm; d run --rm busybox echo hello from a microVM; expect_rc 0; expect_out_exactly "hello from a microVM"
  step=run-status; d run --rm busybox sh -c 'echo out; echo err >&2; exit 3'; expect_rc 3
  expect_out_exactly out; [ "$(cat "$work/err")" = err ] || fail "stderr is '$(cat "$work/err")', expected 'err'"
  step=run-removed; d ps -a -q; expect_rc 0; expect_out_exactly ""
  step=run-not-found; d run --rm busybox no-such-command; [ "$rc" -eq 127 ] || fail "exit status $rc, expected 127"
  step=run-stdin; echo "piped input" >"$work/in"
  d_in=$work/in d run -i --rm busybox sh -c 'read line; echo "got: $line"'
  expect_rc 0; expect_out_exactly "got: piped input"
  step=run-tty; d_tty "docker run -it --rm busybox sh -c 'tty; echo \$((6*7))'"; expect_rc 0
  expect_out "/dev/pts/0"; expect_out "^42"

  # The same over TCP with TLS: output and input through the hijacked TLS stream; a
  # client without a certificate, or without TLS, is refused.
  step=tls; echo "over tls" >"$work/in"
  DOCKER_CERT_PATH="$work/tls" d_in=$work/in d --tlsverify -H "tcp://127.0.0.1:$tls_port" \
    run -i --rm busybox sh -c 'read line; echo "got: $line"'
  expect_rc 0; expect_out_exactly "got: over tls"
  d -H "tcp://127.0.0.1:$tls_port" version; [ "$rc" -ne 0 ] || fail "plain HTTP was served on the TLS port"
  timeout 10 curl -s --cacert "$work/tls/ca.pem" "https://127.0.0.1:$tls_port/_ping" >"$work/out" 2>&1
  [ $? -ne 0 ] || fail "a client without a certificate was served"

  step=run-detached; d run -d --name web -p 8080:80 busybox sh -c 'mkdir -p /www && echo served >/www/index.html && echo started && exec httpd -f -p 80 -h /www'
  expect_rc 0; id=$(cat "$work/out"); [ ${#id} -eq 64 ] || fail "run -d printed '$id', not an ID"
  serves http://127.0.0.1:8080/ served || fail "the published port did not serve"
  step=ps; d ps --format '{{.Names}} {{.Status}} {{.Ports}}'; expect_rc 0; expect_out "^web Up .*0.0.0.0:8080->80/tcp"
  step=inspect; d inspect -f '{{.State.Status}} {{.State.Running}} {{.Name}}' web; expect_rc 0; expect_out_exactly "running true /web"
  step=logs; d logs web; expect_rc 0; expect_out_exactly started
  step=exec; d exec web cat /www/index.html; expect_rc 0; expect_out_exactly served
  d exec web sh -c 'exit 5'; expect_rc 5
  step=top; d top web; expect_rc 0; expect_out "^PID *USER *.*COMMAND"; expect_out "httpd -f -p 80"
  step=exec-tty; d_tty "docker exec -it web sh -c 'tty; echo in-\$HOSTNAME'"; expect_rc 0
  expect_out "/dev/pts/"; expect_out "in-${id:0:12}"

  step=logs-follow; d run -d --name ticker busybox sh -c 'for i in 1 2 3; do echo tick $i; sleep 1; done'; expect_rc 0
  d logs -f ticker; expect_rc 0; expect_out_exactly "$(printf 'tick 1\ntick 2\ntick 3')"
  d wait ticker; expect_rc 0; expect_out_exactly 0
  d logs --tail 1 ticker; expect_rc 0; expect_out_exactly "tick 3"
  d logs -t --tail 2 ticker; expect_rc 0
  expect_out "^20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-9:.]*Z tick 2$"; expect_out "Z tick 3$"

  step=restart-hyperd
  kill -KILL "$hyperd_pid"; wait "$hyperd_pid" 2>/dev/null
  fetch http://127.0.0.1:8080/ | grep -q served || fail "the container stopped serving when hyperd died"
  start_hyperd
  d ps --format '{{.Names}}'; expect_rc 0; expect_out "^web$"
  d exec web cat /www/index.html; expect_rc 0; expect_out_exactly served

  step=stop; d stop -t 2 web; expect_rc 0; expect_out_exactly web
  d inspect -f '{{.State.Status}} {{.State.ExitCode}}' web; expect_rc 0; expect_out_exactly "exited 143"
  step=start; d start web; expect_rc 0
  serves http://127.0.0.1:8080/ served || fail "the restarted container did not serve"
  step=restart; d restart -t 1 web; expect_rc 0; expect_out_exactly web
  serves http://127.0.0.1:8080/ served || fail "the container did not serve after restart"
  step=rm-running; d rm web; expect_rc 1; expect_err "cannot remove a running container"
  step=kill; d kill web; expect_rc 0
  d wait web; expect_rc 0; expect_out_exactly 137
  d kill web; expect_rc 1; expect_err "is not running"
  step=rm-force; d rm -f web ticker; expect_rc 0
  d ps -a -q; expect_rc 0; expect_out_exactly ""

  step=network; d network create appnet; expect_rc 0
  d network ls --format '{{.Name}}'; expect_rc 0; expect_out "^appnet$"
  d run -d --name peer --network appnet busybox sleep 600; expect_rc 0
  d run --rm --network appnet busybox ping -c 1 -W 5 peer; expect_rc 0; expect_out "1 packets received"
  d rm -f peer; expect_rc 0
  d network rm appnet; expect_rc 0

  step=volume; d volume create --opt size=64m vol; expect_rc 0; expect_out_exactly vol
  d run --rm -v vol:/data busybox sh -c 'echo kept >/data/file'; expect_rc 0
  d run --rm -v vol:/data:ro busybox cat /data/file; expect_rc 0; expect_out_exactly kept
  d volume inspect -f '{{.Name}} {{.Driver}}' vol; expect_rc 0; expect_out_exactly "vol local"
  d volume rm vol; expect_rc 0

  step=events
  timeout 60 docker events --format '{{.Action}} {{.Actor.Attributes.name}}' >"$work/events" 2>&1 &
  events_pid=$!; sleep 1
  d run --rm --name evented busybox true; expect_rc 0
  wait_for grep -q "destroy evented" "$work/events" || fail "no destroy event: $(cat "$work/events")"
  grep -q "start evented" "$work/events" && grep -q "die evented" "$work/events" || fail "events: $(cat "$work/events")"
  kill "$events_pid" 2>/dev/null

  # Metering: a container whose monitor is killed is counted up to its last second, in
  # `hyper usage` and in hyperd's /hyper/usage alike.
  step=usage; d run -d --name metered --cpus 2 busybox sleep 600; expect_rc 0
  started_ms=$(date +%s%3N)  # the run began before `docker run -d` returned
  sleep 4
  monitor=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$HYPER_ROOT/containers/$(cat "$work/out")/state.json")
  [ "$monitor" -gt 0 ] || fail "no monitor pid"
  ran=$((($(date +%s%3N) - started_ms) / 1000))  # whole seconds it surely ran
  kill -KILL "$monitor"
  wait_for sh -c "! kill -0 $monitor 2>/dev/null" || fail "the monitor did not die"
  metered_seconds() {  # metered_seconds JSON-FILE: vCPUs and seconds of "metered"
    python3 -c 'import json,sys
for c in json.load(open(sys.argv[1]))["containers"]:
  if c["name"] == "metered": print(c["vcpus"], c["seconds"])' "$1"
  }
  h usage --format json; expect_rc 0; cp "$work/out" "$work/usage.json"
  read -r vcpus seconds < <(metered_seconds "$work/usage.json")
  echo "[$group/$step] metered ${seconds:-?} s at ${vcpus:-?} vCPUs of a run killed after ${ran} s or more" >&2
  # At most the last second is lost.
  [ "${vcpus:-0}" -eq 2 ] && [ "${seconds:-0}" -ge $((ran - 1)) ] ||
    fail "usage after kill -9 of the monitor, which ran ${ran} s or more: '$vcpus' vCPUs, '$seconds' s: $(cat "$work/usage.json")"
  timeout 30 curl -sf --unix-socket "$sock" http://hyperd/v1.47/hyper/usage >"$work/api-usage.json" || fail "GET /hyper/usage failed"
  [ "$(metered_seconds "$work/api-usage.json")" = "$vcpus $seconds" ] || fail "/hyper/usage differs: $(cat "$work/api-usage.json")"
  d rm -f metered; expect_rc 0

  step=errors; d run --rm no-such-image-here true; [ "$rc" -ne 0 ] || fail "a missing image ran"
  d stop no-such-container; expect_rc 1; expect_err "No such container: no-such-container"
  d run --rm --memory 1m busybox true; expect_rc 125; expect_err "too small"
  d rmi busybox; expect_rc 0
  step=prune; d image prune -a -f; expect_rc 0; expect_out "Total reclaimed space"
  d images -q; expect_rc 0; expect_out_exactly ""
}

python_group() {
  step=python
  cat >"$work/client.py" <<'EOF'
import sys, time, urllib.request
import docker

registry = sys.argv[1]
client = docker.DockerClient(base_url=sys.argv[2], version="auto")
def check(what, ok):
    if not ok:
        print("FAIL", what); sys.exit(1)
    print("ok", what)

check("ping", client.ping())
check("version", client.version()["ApiVersion"] == "1.47")
image = client.images.pull(f"{registry}/api/box", tag="1")
image.tag("pybox", "latest")
check("images", any("pybox:latest" in i.tags for i in client.images.list()))
out = client.containers.run("pybox", ["sh", "-c", "echo from python; echo oops >&2"], remove=True, stderr=True)
check("run output", b"from python" in out and b"oops" in out)
try:
    client.containers.run("pybox", ["sh", "-c", "exit 4"], remove=True)
    check("exit status raises", False)
except docker.errors.ContainerError as e:
    check("exit status raises", e.exit_status == 4)
check("info", client.info()["Driver"] == "hyper-microvm")
out = client.containers.run("pybox", ["sh", "-c", "tty; echo $((6*7))"], tty=True, remove=True)
check("run with a tty", out.startswith(b"/dev/pts/") and b"42" in out)
web = client.containers.run("pybox", ["sh", "-c", "mkdir -p /www && echo py-served >/www/index.html && exec httpd -f -p 80 -h /www"],
                            detach=True, name="pyweb", ports={"80/tcp": 8081})
loopback = urllib.request.build_opener(urllib.request.ProxyHandler({}))
served = b""
for _ in range(300):
    try:
        served = loopback.open("http://127.0.0.1:8081/", timeout=5).read()
        break
    except OSError:
        time.sleep(0.2)
check("published port", served.strip() == b"py-served")
web.reload()
check("inspect", web.attrs["State"]["Running"] and web.name == "pyweb"
      and web.attrs["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"] == "8081")
code, out = web.exec_run(["sh", "-c", "tty; echo in-$HOSTNAME"], tty=True)
check("exec with a tty", code == 0 and out.startswith(b"/dev/pts/") and f"in-{web.id[:12]}".encode() in out)
ticker = client.containers.run("pybox", ["sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 1; done"], detach=True, name="pyticker")
check("logs follow", b"".join(ticker.logs(stream=True, follow=True)) == b"tick 1\ntick 2\ntick 3\n")
check("wait", ticker.wait()["StatusCode"] == 0)
ticker.remove()
web.remove(force=True)
check("rm -f of a running container", "pyweb" not in [x.name for x in client.containers.list(all=True)])
c = client.containers.run("pybox", ["sh", "-c", "echo ready; exec sleep 600"], detach=True, name="py1")
for _ in range(300):
    c.reload()
    if c.status == "running" and b"ready" in c.logs(): break
    time.sleep(0.2)
check("detached runs", c.status == "running")
check("listed", "py1" in [x.name for x in client.containers.list()])
code, output = c.exec_run(["sh", "-c", "echo exec-out; exit 2"])
check("exec", code == 2 and output.strip() == b"exec-out")
c.stop(timeout=2)
c.reload()
check("stopped", c.status == "exited" and c.attrs["State"]["ExitCode"] in (137, 143))
c.remove()
check("removed", "py1" not in [x.name for x in client.containers.list(all=True)])
v = client.volumes.create("pyvol", driver_opts={"size": "64m"})
client.containers.run("pybox", ["sh", "-c", "echo persisted >/v/f"], volumes={"pyvol": {"bind": "/v", "mode": "rw"}}, remove=True)
out = client.containers.run("pybox", ["cat", "/v/f"], volumes={"pyvol": {"bind": "/v", "mode": "ro"}}, remove=True)
check("volume", out.strip() == b"persisted")
v.remove()
n = client.networks.create("pynet")
check("network", "pynet" in [x.name for x in client.networks.list()])
n.remove()
try:
    client.containers.get("no-such-container")
    check("not found", False)
except docker.errors.NotFound:
    check("not found", True)
print("python client: all passed")
EOF
  # Debian's interpreter, with Debian's python3-docker (not whatever python3 comes first on PATH).
  timeout 600 /usr/bin/python3 "$work/client.py" "$REGISTRY" "unix://$sock" >"$work/out" 2>"$work/err"
  rc=$?; expect_rc 0; expect_out "python client: all passed"
}

for group in "${@:2}"; do
  case $group in
    docker) docker_group ;;
    python) python_group ;;
    *) fail "unknown group $group" ;;
  esac
done
echo "api: $* passed"
