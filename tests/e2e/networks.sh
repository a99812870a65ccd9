#!/usr/bin/env bash
# End-to-end tests of hyper's networks, inside tests/rig/run (or a host with hardware KVM,
# as root). Every address is on bridges of hyper's and in namespaces this script makes:
#   client  192.0.2.2/24, on a veth to the host (192.0.2.1): another host on the LAN
#   public  203.0.113.2/24, on a veth to the host's "uplink" pub0 (203.0.113.1), with
#           the floating pool 198.51.100.0/29 routed on-link: the Internet side
# Usage: networks.sh BUILD_DIR GROUP...
#   names     containers on one user-defined network find each other by name and alias
#             (HTTP between them), the resolver forwards other names to --dns; --link on
#             the default network (hosts entry, variables); --dns-search, --add-host, -h;
#             network create/ls/inspect/rm/prune and their errors
#   ports     -p served to the client namespace and to the host's loopback, hyper port,
#             -P with EXPOSE, a taken port refused with a clear message, UDP
#   fip       a floating address serves the public namespace from one container, then
#             from another after attach, then not at all after detach; release
#   teardown  stop, rm, kill -9 of the monitor then rm, and network rm leave no tap, bridge
#             port, lease or nftables rule behind
set -uo pipefail
. "$(dirname "$0")/lib.sh"

for tool in ip nft python3 /bin/busybox; do command -v "$tool" >/dev/null || fail "$tool is needed"; done
[ "$(id -u)" -eq 0 ] || fail "networks need root (bridges, taps, nftables): run as root or in tests/rig/run"
bb=/bin/busybox

client=hyper-client-$$ public=hyper-public-$$
cleanup() {
  pkill -KILL -f "$HYPER_ROOT" 2>/dev/null
  ip netns del "$client" 2>/dev/null; ip netns del "$public" 2>/dev/null
  ip link del cl$$ 2>/dev/null; ip link del pub0 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# veth_host NS HOST_IF HOST_CIDR NS_CIDR: a namespace on a veth to the host.
veth_host() {
  ip netns add "$1" && ip link add "$2" type veth peer name eth0 netns "$1" &&
    ip addr add "$3" dev "$2" && ip link set "$2" up &&
    ip -n "$1" addr add "$4" dev eth0 && ip -n "$1" link set eth0 up && ip -n "$1" link set lo up ||
    fail "could not make namespace $1"
}
veth_host "$client" cl$$ 192.0.2.1/24 192.0.2.2/24
ip -n "$client" route add default via 192.0.2.1 || fail "client route"
veth_host "$public" pub0 203.0.113.1/24 203.0.113.2/24
ip -n "$public" route add 198.51.100.0/29 dev eth0 || fail "public route"

# web NAME ARGS...: a detached container serving "NAME" over HTTP on port 80.
web() {
  local name=$1; shift
  h run -d --name "$name" "$@" busybox sh -c "mkdir -p /www && echo $name >/www/index.html && exec httpd -f -p 80 -h /www"
  expect_rc 0
}
# fetch_in NS URL: the body, through busybox wget in namespace NS ("" for the host's).
# (Not wget -T: Debian 12's busybox wget crashes with it on a refused connection.)
fetch_in() {
  if [ -n "$1" ]; then ip netns exec "$1" timeout 10 $bb wget -q -O- "$2" 2>/dev/null
  else timeout 10 $bb wget -q -O- "$2" 2>/dev/null; fi
}
# within SECONDS CMD...: runs CMD until it succeeds, for at most SECONDS.
within() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do [ "$SECONDS" -lt "$deadline" ] || return 1; sleep 0.2; done
}
body_is() { [ "$(fetch_in "$1" "$2")" = "$3" ]; }
# serves NS URL BODY: waits (httpd starts after `run -d` returns) until URL gives BODY.
serves() { within 60 body_is "$1" "$2" "$3"; }

# What hyper leaves on the host, one line per object: taps, bridge ports, leases, rules.
leftovers() {
  ip -o link show | grep -o 'hyt[0-9a-f]*' | sed 's/^/tap /'
  for port in /sys/class/net/*/brport; do [ -e "$port" ] && echo "bridge-port ${port%/brport}"; done
  ls "$HYPER_ROOT"/networks/*/endpoints/ 2>/dev/null | grep json | sed 's/^/lease /'
  nft list table ip hyper 2>/dev/null | grep -o 'comment "hyper:[a-z]*:[^"]*"' | grep -v 'hyper:net:' | sed 's/^/rule /'
}
on_fail() {
  echo "--- host network ---"
  ip -br addr; ip route; ip -br link show master hyper0 2>/dev/null
  echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
  nft list ruleset
  "$hyper" ps -a
}
no_leftovers() { [ -z "$(leftovers)" ]; }
expect_no_leftovers() { within 10 no_leftovers || fail "left behind after $1: $(leftovers)"; }

run_group() {
case $group in
  names)
    load_busybox
    step=network-create; h network create front; expect_rc 0
    [[ $(cat "$work/out") =~ ^[0-9a-f]{64}$ ]] || fail "network create printed '$(cat "$work/out")', not an ID"
    step=network-taken; h network create front; expect_rc 125; expect_err "already exists"
    step=network-reserved; h network create none; expect_rc 125; expect_err "reserved"
    step=network-bad-subnet; h network create --subnet 10.1.2.3/24 x; expect_rc 125; expect_err "host bits are set"
    step=network-subnet; h network create --subnet 10.55.0.0/24 --gateway 10.55.0.254 back; expect_rc 0
    step=network-overlap; h network create --subnet 10.55.0.128/25 over; expect_rc 125; expect_err "overlaps network \"back\""
    step=network-ls; h network ls; expect_rc 0; expect_out "bridge *bridge *local"; expect_out "front *bridge"; expect_out "back "
    step=network-inspect; h network inspect back; expect_rc 0
    expect_out '"Subnet": "10.55.0.0/24"'; expect_out '"Gateway": "10.55.0.254"'
    ip -br addr show | grep -q "10.55.0.254/24" || fail "network create made no bridge with the gateway address"
    step=unknown-network; h run --rm --network nosuch busybox true; expect_rc 125; expect_err "network nosuch not found"

    step=by-name; web www1 --network front --network-alias site
    h run --rm --network front busybox sh -c 'wget -q -O- http://www1/ && wget -q -O- http://site.front/ && nslookup www1'
    expect_rc 0; expect_out "^www1$"; [ "$(grep -c '^www1$' "$work/out")" -eq 2 ] || fail "the alias did not answer"
    # The answer's address, not the server's (which carries :53).
    expect_out "^Address:[[:space:]]*172\.[0-9.]*$"
    step=unknown-name; h run --rm --network front busybox nslookup nosuchcontainer; [ "$rc" -ne 0 ] || fail "an unknown name resolved"
    step=isolated-name; h run --rm --network back busybox nslookup www1; [ "$rc" -ne 0 ] || fail "www1 resolved from another network"
    step=alias-default; h run --rm --network-alias x busybox true; expect_rc 125; expect_err "user-defined networks"

    # The resolver's forwarding: a DNS server of the test's in the client namespace answers
    # every A query with 192.0.2.99; the container names it with --dns.
    ip netns exec "$client" python3 "$repo/tests/e2e/fake-dns" 192.0.2.2 192.0.2.99 >"$work/fake-dns" 2>&1 &
    fake=$!
    for _ in $(seq 100); do grep -q listening "$work/fake-dns" && break; kill -0 $fake 2>/dev/null || break; sleep 0.1; done
    grep -q listening "$work/fake-dns" ||
      fail "the test's DNS server did not start: $(cat "$work/fake-dns"); the client namespace has: $(ip -n "$client" -br addr)"
    step=forward; h run --rm --network front --dns 192.0.2.2 --dns-search example.test busybox sh -c \
      'nslookup far.away.test; cat /etc/resolv.conf'
    expect_rc 0; expect_out "^Address:[[:space:]]*192.0.2.99$"; expect_out "search example.test"; expect_out "nameserver 10\.\|nameserver 172\."
    kill $fake

    step=link; web db -p 8081:80
    h run --rm --link db:database -h linked --add-host registry.test:10.9.8.7 busybox sh -c \
      'cat /etc/hosts; env | sort; hostname; wget -q -O- http://database/'
    expect_rc 0; expect_out "[[:space:]]database .* db$"; expect_out "^DATABASE_PORT_80_TCP_ADDR=172\."; expect_out "^DATABASE_NAME=/.*/database$"
    expect_out "^DATABASE_PORT=tcp://172\."; expect_out "^10.9.8.7[[:space:]]registry.test$"; expect_out "^linked$"; expect_out "^db$"
    step=link-stopped; h stop -t 1 db; h run --rm --link db busybox true; expect_rc 125; expect_err "Cannot link to a non running container"
    step=link-none; h run --rm --network none --link db busybox true; expect_rc 125; expect_err "conflicting options"
    step=none; h run --rm --network none busybox sh -c 'ls /sys/class/net'; expect_rc 0; expect_out_exactly lo

    step=network-rm-busy; h network rm front; expect_rc 1; expect_err "active endpoints"
    h rm -f www1 db; expect_rc 0
    step=network-rm; h network rm front; expect_rc 0
    h network inspect front; expect_rc 1
    step=network-prune; h network prune -f; expect_rc 0; expect_out "back"
    step=network-rm-default; h network rm bridge; expect_rc 1; expect_err "pre-defined"
    ;;

  ports)
    mkdir -p "$work/peer/bin" && cp "$build/tests/test-peer" "$work/peer/bin/" || fail "no test-peer in $build/tests"
    load_busybox --extra-layer "$work/peer"
    step=publish; web pweb -p 8080:80 -p 127.0.0.1:8082:80
    serves "$client" http://192.0.2.1:8080/ pweb || fail "the published port does not serve the client namespace"
    serves "" http://127.0.0.1:8080/ pweb || fail "the published port does not serve the host's loopback"
    serves "" http://127.0.0.1:8082/ pweb || fail "the loopback-only port does not serve the host's loopback"
    [ -z "$(fetch_in "$client" http://192.0.2.1:8082/)" ] || fail "a 127.0.0.1 port served another address"
    step=port; h port pweb; expect_rc 0; expect_out "^80/tcp -> 0.0.0.0:8080$"; expect_out "^80/tcp -> 127.0.0.1:8082$"
    h port pweb 80/udp; expect_rc 1; expect_err "No public port '80/udp'"
    step=ps; h ps; expect_rc 0; expect_out "0.0.0.0:8080->80/tcp"
    step=inspect; h inspect pweb; expect_rc 0; expect_out '"HostPort": "8080"'; expect_out '"IPAddress": "172\.'
    step=taken; h run -d -p 8080:80 busybox sleep 100; expect_rc 125; expect_err "0.0.0.0:8080/tcp failed: port is already allocated"
    step=taken-by-host; $bb nc -l -p 8090 >/dev/null 2>&1 &
    holder=$!
    sleep 0.5
    h run -d -p 8090:80 busybox sleep 100; expect_rc 125; expect_err "port is already allocated"
    kill $holder
    step=udp; h run -d --name echo -p 5353:53/udp busybox test-peer udp-echo 0.0.0.0 53
    expect_rc 0
    udp_echoes() {
      ip netns exec "$client" python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1); s.sendto(b"ping-udp", ("192.0.2.1", 5353)); assert s.recv(64) == b"ping-udp"' 2>/dev/null
    }
    within 60 udp_echoes || fail "the published UDP port does not echo"
    step=publish-all; h commit -c 'EXPOSE 80' pweb exposed:1; expect_rc 0
    h run -d --name pall -P exposed:1 sh -c 'mkdir -p /www && echo pall >/www/index.html && exec httpd -f -p 80 -h /www'
    expect_rc 0
    h port pall 80; expect_rc 0
    hostport=$(sed 's/.*://' "$work/out")
    [[ $hostport =~ ^[0-9]+$ ]] && [ "$hostport" -gt 1024 ] || fail "-P published on '$(cat "$work/out")'"
    serves "$client" "http://192.0.2.1:$hostport/" pall || fail "the -P port does not serve"
    step=restart; h stop -t 1 pweb; h start pweb; expect_rc 0
    serves "$client" http://192.0.2.1:8080/ pweb || fail "the published port does not serve after a restart"
    h rm -f pweb echo pall; expect_rc 0
    step=bad; h run --rm -p 70000:80 busybox true; expect_rc 125; expect_err "invalid port"
    h run --rm -p 80/sctp busybox true; expect_rc 125; expect_err "invalid protocol"
    h run --rm --network none -p 80 busybox true; expect_rc 125; expect_err "conflicting options"
    ;;

  fip)
    load_busybox
    step=no-pool; h fip ls; expect_rc 125; expect_err "no floating IP pool"
    echo '{"floating_ips": {"pool": "198.51.100.0/29", "interface": "pub0"}}' >"$HYPER_ROOT/config.json"
    step=allocate; h fip allocate; expect_rc 0; expect_out_exactly 198.51.100.1
    fip=198.51.100.1
    ip -br addr show pub0 | grep -q "$fip/32" || fail "the floating IP is not on the uplink"
    h fip allocate 198.51.100.1; expect_rc 1; expect_err "already allocated"
    h fip allocate 10.0.0.1; expect_rc 1; expect_err "not in the floating IP pool"
    web fa; web fb --network none
    step=attach-none; h fip attach $fip fb; expect_rc 1; expect_err "no network"
    h rm -f fb; web fb
    step=attach; h fip attach $fip fa; expect_rc 0
    serves "$public" "http://$fip/" fa || fail "the floating IP does not reach fa"
    # Outbound from the container leaves with the floating address (SNAT): the public side sees it.
    ip netns exec "$public" timeout 20 $bb nc -l -p 9000 >"$work/seen" 2>/dev/null &
    listener=$!
    sleep 0.5
    h exec fa sh -c 'echo from-fa | nc -w 2 203.0.113.2 9000'
    wait $listener
    grep -q from-fa "$work/seen" || fail "the container could not reach the public namespace"
    step=ls; h fip ls; expect_rc 0; expect_out "$fip *fa"
    step=move; h fip attach $fip fb; expect_rc 0
    serves "$public" "http://$fip/" fb || fail "the floating IP did not move to fb"
    h exec fa true; expect_rc 0  # neither restarted
    step=survives-restart; h stop -t 1 fb; h start fb; expect_rc 0
    serves "$public" "http://$fip/" fb || fail "the floating IP did not come back with fb's restart"
    step=detach; h fip detach $fip; expect_rc 0
    [ -z "$(fetch_in "$public" "http://$fip/")" ] || fail "the detached floating IP still serves"
    step=release; h fip release $fip; expect_rc 0
    ip -br addr show pub0 | grep -q "$fip" && fail "the released floating IP is still on the uplink"
    h fip release $fip; expect_rc 1; expect_err "not allocated"
    h rm -f fa fb; expect_rc 0
    ;;

  teardown)
    load_busybox
    h network create tnet; expect_rc 0
    tnet=$(cat "$work/out")
    bridge=hyper-${tnet:0:9}
    ip link show "$bridge" >/dev/null || fail "network create made no bridge $bridge"
    step=stop; web t1 --network tnet -p 8083:80
    [ -n "$(leftovers)" ] || fail "a running container shows nothing to clean up: the check sees nothing"
    h stop -t 1 t1; expect_rc 0; expect_no_leftovers stop
    step=rm; h start t1; expect_rc 0; h rm -f t1; expect_rc 0; expect_no_leftovers "rm -f"
    step=run-rm; h run --rm -p 8084:80 busybox true; expect_rc 0; expect_no_leftovers "run --rm"
    step=kill-monitor; web t2 --network tnet -p 8085:80
    monitor=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$HYPER_ROOT"/containers/*/state.json)
    kill -9 "$monitor"
    h rm -f t2; expect_rc 0; expect_no_leftovers "kill -9 of the monitor, then rm"
    step=network-rm; h network rm tnet; expect_rc 0
    ip link show "$bridge" >/dev/null 2>&1 && fail "network rm left the bridge $bridge"
    nft list table ip hyper | grep -q "hyper:net:${tnet:0:12}" && fail "network rm left tnet's rules"
    ;;

  *) fail "unknown group $group" ;;
esac
}

# Several groups share one set-up (and, under CTest, one nested VM).
for group in "${@:2}"; do
  step=start
  run_group
  echo "PASS [$group]"
done
