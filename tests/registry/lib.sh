# Shared helpers of the registry tests and the pull benchmark; source it from bash.
#
#   registry_start plain|basic|token
#       A docker-registry (distribution 2.8) on 127.0.0.1:<free port>, filesystem storage in
#       a temporary directory, deletes enabled. Exports
#         REGISTRY=127.0.0.1:PORT        REGISTRY_STORAGE=DIR (holds docker/registry/v2/...)
#         REGISTRY_MODE=MODE             REGISTRY_LOG=FILE
#         REGISTRY_USER=alice REGISTRY_PASSWORD=wonderland (basic and token)
#       basic: an htpasswd file (bcrypt) with alice/wonderland.
#       token: tests/registry/token-server (TOKEN_SERVER=127.0.0.1:PORT, TOKEN_LOG=FILE)
#       and the registry's `auth: token:`; anonymous callers may pull public/*, alice may
#       pull and push everything.
#   proxy_start [fault-proxy options...]
#       tests/registry/fault-proxy in front of $REGISTRY; exports PROXY=127.0.0.1:PORT and
#       PROXY_LOG=FILE. proxy_stop ends it (one proxy at a time).
#   make_image OUT.tar [make-test-image options...]   prints the image ID
#   make_arch_index OUT_DIR ARCH[/VARIANT]  an OCI layout whose index.json names one
#       image index (tag `1`) that lists a single ARCH manifest (built from make-test-image)
#   sk ARGS...          skopeo with a policy and an auth file of our own
#   skopeo_push SOURCE REF   skopeo copy SOURCE docker://REF (credentials in auth modes)
#   skopeo_digest REF        the manifest digest skopeo sees for docker://REF
#   json FILE PYTHON_EXPR    evaluates EXPR with `d` the parsed JSON of FILE ('-' = stdin)
#
# Every process started here is killed and every temporary file removed at exit (the
# EXIT trap is ours: add more with `reg_on_exit COMMAND`). Nothing here talks to anything
# but 127.0.0.1.

REG_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REG_REPO_ROOT=$(cd "$REG_LIB_DIR/../.." && pwd)
REG_WORK=$(mktemp -d "${TMPDIR:-/tmp}/hyper-registry.XXXXXX")
REG_PIDS=()
REG_EXIT_HOOKS=()
REGISTRY_USER=alice
REGISTRY_PASSWORD=wonderland

reg_cleanup() {
  local hook pid
  for hook in "${REG_EXIT_HOOKS[@]}"; do eval "$hook" || true; done
  for pid in "${REG_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${REG_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$REG_WORK"
}
trap reg_cleanup EXIT
reg_on_exit() { REG_EXIT_HOOKS+=("$1"); }

reg_die() { echo "FAIL: $*" >&2; exit 1; }

# The tools the tests stand on; a missing one is a failure, never a skip.
registry_require_tools() {
  local tool package
  for tool in docker-registry:docker-registry skopeo:skopeo htpasswd:apache2-utils openssl:openssl \
              python3:python3 curl:curl; do
    package=${tool#*:} tool=${tool%%:*}
    command -v "$tool" >/dev/null ||
      reg_die "$tool is missing: install the Debian package $package (listed in scripts/packages.txt; scripts/setup installs it)"
  done
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port_file FILE PID WHAT: waits for a helper to write its port (10 s)
wait_port_file() {
  for _ in $(seq 100); do
    [ -s "$1" ] && { cat "$1"; return 0; }
    kill -0 "$2" 2>/dev/null || reg_die "$3 exited at start"
    sleep 0.1
  done
  reg_die "$3 did not start within 10 s"
}

json() {
  local file=$1; shift
  python3 -c '
import json, sys
d = json.load(sys.stdin if sys.argv[1] == "-" else open(sys.argv[1]))
v = eval(sys.argv[2])
print(json.dumps(v) if isinstance(v, (dict, list)) else v)' "$file" "$*"
}

sk() {
  [ -f "$REG_WORK/policy.json" ] || echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$REG_WORK/policy.json"
  REGISTRY_AUTH_FILE="$REG_WORK/skopeo-auth.json" skopeo --policy "$REG_WORK/policy.json" "$@"
}

reg_creds() {
  [ "${REGISTRY_MODE:-plain}" = plain ] || echo "$REGISTRY_USER:$REGISTRY_PASSWORD"
}

# skopeo_push SOURCE REF [skopeo copy options...]
skopeo_push() {
  local source=$1 ref=$2; shift 2
  local creds; creds=$(reg_creds)
  sk copy --quiet --dest-tls-verify=false ${creds:+--dest-creds "$creds"} "$@" "$source" "docker://$ref" ||
    reg_die "skopeo copy $source docker://$ref failed"
}

skopeo_inspect() {
  local creds; creds=$(reg_creds)
  sk inspect --tls-verify=false ${creds:+--creds "$creds"} "$@"
}

skopeo_digest() {
  skopeo_inspect "docker://$1" | json - 'd["Digest"]'
}

make_image() {
  local out=$1; shift
  "$REG_REPO_ROOT/tests/images/make-test-image" "$@" "$out" || reg_die "make-test-image $* $out failed"
}

# random_dir DIR MIB: a directory with MIB MiB of incompressible data (one file per MiB)
random_dir() {
  mkdir -p "$1"
  python3 - "$1" "$2" <<'PY'
import os, sys
for i in range(int(sys.argv[2])):
    with open(os.path.join(sys.argv[1], f"{i:04d}.bin"), "wb") as f:
        f.write(os.urandom(1 << 20))
PY
}

make_arch_index() {
  local out=$1 platform=$2 tar="$REG_WORK/arch-base.$$.tar"
  make_image "$tar" --format oci --tag arch/busybox:1 >/dev/null
  python3 - "$tar" "$out" "$platform" <<'PY' || reg_die "make_arch_index failed"
import hashlib, json, os, sys, tarfile
source, out, platform = sys.argv[1:]
arch, _, variant = platform.partition("/")
os.makedirs(out + "/blobs/sha256", exist_ok=True)
with tarfile.open(source) as tar:
    tar.extractall(out)
def read_blob(digest):
    with open(f"{out}/blobs/sha256/{digest.split(':', 1)[1]}", "rb") as f:
        return f.read()
def write_blob(data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(f"{out}/blobs/sha256/{digest.split(':', 1)[1]}", "wb") as f:
        f.write(data)
    return digest
with open(out + "/index.json") as f:
    top = json.load(f)
manifest = json.loads(read_blob(top["manifests"][0]["digest"]))
config = json.loads(read_blob(manifest["config"]["digest"]))
config["architecture"] = arch
if variant:
    config["variant"] = variant
config_bytes = json.dumps(config, separators=(",", ":")).encode()
manifest["config"].update(digest=write_blob(config_bytes), size=len(config_bytes))
manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
platform_doc = {"architecture": arch, "os": "linux"}
if variant:
    platform_doc["variant"] = variant
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [{"mediaType": manifest["mediaType"], "digest": write_blob(manifest_bytes),
                        "size": len(manifest_bytes), "platform": platform_doc}]}
index_bytes = json.dumps(index, separators=(",", ":")).encode()
top = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
       "manifests": [{"mediaType": index["mediaType"], "digest": write_blob(index_bytes), "size": len(index_bytes),
                      "annotations": {"org.opencontainers.image.ref.name": "1"}}]}
with open(out + "/index.json", "w") as f:
    json.dump(top, f)
PY
  rm -f "$tar"
}

reg_write_config() {
  local dir=$1 port=$2 mode=$3
  cat >"$dir/config.yml" <<YML
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
  redirect:
    disable: true
http:
  addr: 127.0.0.1:$port
  secret: $(openssl rand -hex 16)
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
YML
  case $mode in
    tls) # under http:, which the heredoc above has already closed
      sed -i "/^http:/a\\  tls:\\n    certificate: $dir/server.crt\\n    key: $dir/server.key" "$dir/config.yml"
      ;;
    basic) cat >>"$dir/config.yml" <<YML
auth:
  htpasswd:
    realm: hyper-test-registry
    path: $dir/htpasswd
YML
      ;;
    token) cat >>"$dir/config.yml" <<YML
auth:
  token:
    realm: http://$TOKEN_SERVER/token
    service: hyper-test-registry
    issuer: hyper-test-token-server
    rootcertbundle: $dir/token/token.crt
YML
      ;;
  esac
}

registry_start() {
  local mode=${1:-plain} dir port pid code
  case $mode in plain|basic|token|tls) ;; *) reg_die "registry_start: unknown mode '$mode' (plain|basic|token|tls)" ;; esac
  registry_require_tools
  dir=$(mktemp -d "$REG_WORK/registry.XXXXXX")
  mkdir -p "$dir/storage"
  if [ "$mode" = basic ]; then
    htpasswd -B -b -c "$dir/htpasswd" "$REGISTRY_USER" "$REGISTRY_PASSWORD" 2>/dev/null || reg_die "htpasswd failed"
  fi
  if [ "$mode" = tls ]; then
    # A CA of the test's own and a certificate for 127.0.0.1 signed by it.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=hyper-test-ca -keyout "$dir/ca.key" \
      -out "$dir/ca.crt" 2>/dev/null || reg_die "openssl: CA"
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$dir/server.key" -out "$dir/server.csr" \
      2>/dev/null || reg_die "openssl: CSR"
    printf 'subjectAltName=IP:127.0.0.1\n' >"$dir/san.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
      -extfile "$dir/san.ext" -out "$dir/server.crt" 2>/dev/null || reg_die "openssl: certificate"
    export REGISTRY_CA=$dir/ca.crt
  fi
  if [ "$mode" = token ]; then
    mkdir -p "$dir/token"
    TOKEN_LOG="$dir/token-server.log"
    "$REG_LIB_DIR/token-server" --dir "$dir/token" --port-file "$dir/token.port" --log "$TOKEN_LOG" \
      --issuer hyper-test-token-server --service hyper-test-registry \
      --user "$REGISTRY_USER:$REGISTRY_PASSWORD" 2>"$dir/token-server.err" &
    pid=$!; REG_PIDS+=("$pid")
    TOKEN_SERVER=127.0.0.1:$(wait_port_file "$dir/token.port" "$pid" "token-server (see $dir/token-server.err)") || exit 1
    export TOKEN_SERVER TOKEN_LOG
  fi
  for _ in 1 2 3; do
    port=$(free_port)
    reg_write_config "$dir" "$port" "$mode"
    # docker-registry reads REGISTRY_* variables as configuration: give it a clean environment.
    env -i PATH="$PATH" HOME="$dir" docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    pid=$!
    # Up to a minute: under emulation (the nested VM of tests/rig) the registry starts slowly.
    for _ in $(seq 600); do
      if [ "$mode" = tls ]; then
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$dir/ca.crt" "https://127.0.0.1:$port/v2/" 2>/dev/null) || true
      else
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/v2/" 2>/dev/null) || true
      fi
      case $code in 200|401) break ;; esac
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if [ "$code" = 200 ] || [ "$code" = 401 ]; then
      REG_PIDS+=("$pid")
      export REGISTRY=127.0.0.1:$port REGISTRY_STORAGE=$dir/storage REGISTRY_MODE=$mode REGISTRY_LOG=$dir/registry.log
      export REGISTRY_USER REGISTRY_PASSWORD
      return 0
    fi
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    grep -q "address already in use" "$dir/registry.log" || break
  done
  tail -n 20 "$dir/registry.log" >&2
  reg_die "docker-registry did not answer on 127.0.0.1:$port/v2/"
}

PROXY_PID=
proxy_start() {
  [ -n "${REGISTRY:-}" ] || reg_die "proxy_start: no registry (call registry_start first)"
  local dir pid
  dir=$(mktemp -d "$REG_WORK/proxy.XXXXXX")
  PROXY_LOG=$dir/requests.log
  "$REG_LIB_DIR/fault-proxy" --upstream "$REGISTRY" --port-file "$dir/port" --log "$PROXY_LOG" "$@" \
    2>"$dir/stderr" &
  pid=$!; REG_PIDS+=("$pid"); PROXY_PID=$pid
  PROXY=127.0.0.1:$(wait_port_file "$dir/port" "$pid" "fault-proxy (see $dir/stderr)") || exit 1
  export PROXY PROXY_LOG
}

proxy_stop() {
  [ -n "$PROXY_PID" ] || return 0
  kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID='' PROXY='' PROXY_LOG=''
}
