#!/usr/bin/env bash
# Registry tests of `hyper pull/push/login/logout/tag/rmi/images/image .../save/load`
# against Debian's docker-registry (distribution 2.8) on 127.0.0.1, with skopeo as the
# independent peer that sets up and checks registry contents. Natively: no VM is needed.
# Usage: registry.sh BUILD_DIR GROUP
#   plain     pull of a skopeo-pushed 3-layer image (digest as skopeo sees it), images,
#             image inspect, tag, push to another repository and by tag, pull by digest,
#             "Image is up to date", rmi and image prune -a leaving no blob; three
#             pulls and a prune at once on one store
#   tls       HTTPS with a CA of the test's own: refused untrusted (with the certs.d
#             hint), pulled and pushed with <root>/certs.d/HOST:PORT/ca.crt
#   basic     htpasswd registry: unauthenticated pull refused, login (--password-stdin,
#             -p) writes $DOCKER_CONFIG/config.json, pull and push, a wrong password
#             refused with the registry's message, logout removes the entry
#   token     token-server registry: anonymous pull of public/, anonymous push and
#             anonymous pull of a private repository refused, a wrong password refused
#             with the token server's message, login, then push and private pull work
#   skopeo    both ways: skopeo-pushed (Docker and OCI manifests) pulled by hyper,
#             hyper-pushed (pulled and loaded images) copied by skopeo;
#             skopeo's docker-archive and oci-archive load with the same image ID;
#             `hyper save` output read by skopeo as docker-archive and oci-archive
#   failures  a corrupt blob in the registry's storage, a corrupt blob on the wire, a
#             pull killed half-way and resumed (Range), an index with only arm64 and
#             --platform, 401, 404, 429 (retried), persistent 500, invalid references
#   chunked   HYPER_PUSH_CHUNK_SIZE pushes in PATCH chunks with Content-Range; a second
#             push of shared layers mounts them from another repository
# Requests go through tests/registry/fault-proxy where the test needs to see or disturb
# them. Everything listens on and talks to 127.0.0.1 only.
# REGISTRY_TESTS_KEEP_GOING=1 reports every failed check instead of stopping at the first.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR GROUP" >&2; exit 2; }
build=$(cd "$1" && pwd) group=$2
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/registry/lib.sh
source "$here/lib.sh"
hyper_bin="$build/cli/hyper"
out=$REG_WORK/out err=$REG_WORK/err
step=setup

# A safety net: anything that is not loopback goes to a dead proxy instead of the network.
export http_proxy=http://127.0.0.1:1 https_proxy=http://127.0.0.1:1 HTTP_PROXY=http://127.0.0.1:1 \
       HTTPS_PROXY=http://127.0.0.1:1 ALL_PROXY=http://127.0.0.1:1 all_proxy=http://127.0.0.1:1 \
       no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
export DOCKER_CONFIG=$REG_WORK/docker-config
mkdir -p "$DOCKER_CONFIG"
unset HYPER_ROOT HYPER_PUSH_CHUNK_SIZE

fail() {
  echo "FAIL [registry.$group/$step]: $*" >&2
  echo "--- stdout of the last command ---" >&2; tail -n 30 "$out" >&2 2>/dev/null || true
  echo "--- stderr of the last command ---" >&2; tail -n 30 "$err" >&2 2>/dev/null || true
  if [ -n "${PROXY_LOG:-}" ] && [ -s "$PROXY_LOG" ]; then
    echo "--- fault-proxy log (last 25) ---" >&2; tail -n 25 "$PROXY_LOG" | cut -c1-220 >&2
  fi
  if [ -n "${TOKEN_LOG:-}" ] && [ -s "$TOKEN_LOG" ]; then
    echo "--- token-server log (last 10) ---" >&2; tail -n 10 "$TOKEN_LOG" | cut -c1-220 >&2
  fi
  if [ -n "${REGISTRY_LOG:-}" ] && [ -s "$REGISTRY_LOG" ]; then
    echo "--- docker-registry errors (last 10) ---" >&2
    grep 'level=error' "$REGISTRY_LOG" | grep -v 'err.code="blob unknown".*http.request.method=HEAD' | tail -n 10 |
      sed 's/ go.version=.*http.request.method=/ /' | cut -c1-300 >&2 || true
  fi
  # REGISTRY_TESTS_KEEP_GOING=1 (for working on hyper): report every failure, not just the first.
  if [ "${REGISTRY_TESTS_KEEP_GOING:-}" = 1 ]; then
    failures=$((failures + 1)); touch "$REG_WORK/failed"
    return 0
  fi
  exit 1
}
failures=0
reg_die() { fail "$*"; }

[ -x "$hyper_bin" ] || fail "no $hyper_bin (build first: ninja -C $build)"
registry_require_tools

INSECURE=()  # --insecure-registry flags for every hyper command
root=
# h ARGS...: hyper --root $root with the insecure registries; stdout/stderr in $out/$err,
# the status in $rc. Never aborts the script by itself.
h() {
  echo "[$group/$step] hyper $*" >&2
  rc=0
  timeout 150 "$hyper_bin" --root "$root" "${INSECURE[@]}" "$@" >"$out" 2>"$err" </dev/null || rc=$?
  [ "$rc" -ne 124 ] || fail "hyper $* did not finish within 150 s"
}
# h_in TEXT ARGS...: the same with TEXT on stdin
h_in() {
  local text=$1; shift
  echo "[$group/$step] printf ... | hyper $*" >&2
  rc=0
  printf '%s' "$text" | timeout 150 "$hyper_bin" --root "$root" "${INSECURE[@]}" "$@" >"$out" 2>"$err" || rc=$?
  [ "$rc" -ne 124 ] || fail "hyper $* did not finish within 150 s"
}
expect_rc() { [ "$rc" -eq "$1" ] || fail "exit status $rc, expected $1"; }
expect_fail() { [ "$rc" -ne 0 ] || fail "exit status 0, expected a failure"; }
expect_out() { grep -q -- "$1" "$out" || fail "stdout lacks '$1'"; }
expect_err() { grep -qi -- "$1" "$err" || fail "stderr lacks '$1' (case-insensitive)"; }
expect_last_line() { [ "$(tail -n 1 "$out")" = "$1" ] || fail "last line of stdout is '$(tail -n 1 "$out")', expected '$1'"; }
new_root() { root=$(mktemp -d "$REG_WORK/root.XXXXXX"); }

# Every blob in the store is named by the sha256 of its content.
check_blobs() {
  local dir="$root/images/blobs/sha256" f name
  [ -d "$dir" ] || return 0
  for f in "$dir"/*; do
    [ -f "$f" ] || continue
    name=$(basename "$f")
    [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$name" ] || fail "blob $name in the store does not hash to its name"
  done
}
blob_count() { find "$root/images/blobs/sha256" -type f 2>/dev/null | wc -l; }
partial_count() { find "$root/images/partial" -type f 2>/dev/null | wc -l; }

# image_field REF PYTHON_EXPR: evaluates EXPR on `hyper image inspect REF` (d = the array)
image_field() {
  h image inspect "$1"
  [ "$rc" -eq 0 ] || fail "hyper image inspect $1 failed"
  json "$out" "$2"
}

# pull_ok REF DIGEST: a pull that downloads, with docker's lines
pull_ok() {
  h pull "$1"
  expect_rc 0
  expect_out "^Digest: $2\$"
  expect_out "^Status: Downloaded newer image for $1\$"
  expect_last_line "$1"
  check_blobs
  [ "$(partial_count)" -eq 0 ] || fail "a successful pull left partial downloads: $(ls "$root/images/partial")"
}

# The config digest (the image ID) and layer digests the registry holds for REF.
registry_config_digest() { skopeo_inspect --raw "docker://$1" | json - 'd["config"]["digest"]'; }
registry_layers() { skopeo_inspect "docker://$1" | json - '" ".join(d["Layers"])'; }
registry_diff_ids() { skopeo_inspect --config "docker://$1" | json - '" ".join(d["rootfs"]["diff_ids"])'; }

# A 3-layer image: busybox, a small directory layer, 1 MiB of incompressible padding.
make_three_layer_image() {
  local tar=$1 tag=$2
  mkdir -p "$REG_WORK/extra"
  echo "layer two of $tag" >"$REG_WORK/extra/two.txt"
  make_image "$tar" --tag "$tag" --extra-layer "$REG_WORK/extra" --pad-mb 1
}

proxy_count() { grep -cE -- "$1" "$PROXY_LOG" || true; }

group_plain() {
  registry_start plain
  INSECURE=(--insecure-registry "$REGISTRY")
  local ref=$REGISTRY/test/busybox:1 id digest layers diff_ids
  step=push-with-skopeo
  id=$(make_three_layer_image "$REG_WORK/img.tar" test/busybox:1)
  skopeo_push "docker-archive:$REG_WORK/img.tar" "$ref"
  digest=$(skopeo_digest "$ref")
  layers=$(registry_layers "$ref")
  diff_ids=$(registry_diff_ids "$ref")
  [ "$(wc -w <<<"$layers")" -eq 3 ] || fail "skopeo pushed $(wc -w <<<"$layers") layers, expected 3"

  step=pull; new_root
  pull_ok "$ref" "$digest"
  grep -qE '^[0-9a-f]{12}: Pull complete$' "$out" || fail "no '<12 hex>: Pull complete' line"
  step=images; h images
  expect_rc 0
  grep -qE "^$REGISTRY/test/busybox +1 +${id:7:12}" "$out" || fail "hyper images does not list $ref with ID ${id:7:12}"
  h images --digests
  expect_rc 0; expect_out "$digest"
  h images -q
  expect_rc 0; [ "$(cat "$out")" = "${id:7:12}" ] || fail "images -q printed '$(cat "$out")', expected ${id:7:12}"
  step=image-inspect
  [ "$(image_field "$ref" 'd[0]["Id"]')" = "$id" ] || fail "image inspect Id is not $id"
  [ "$(json "$out" '" ".join(d[0]["RootFS"]["Layers"])')" = "$diff_ids" ] || fail "RootFS.Layers are not the registry's diff_ids"
  json "$out" '"'"$REGISTRY/test/busybox@$digest"'" in d[0]["RepoDigests"]' | grep -qx True ||
    fail "RepoDigests lack $REGISTRY/test/busybox@$digest"
  json "$out" '"'"$ref"'" in d[0]["RepoTags"]' | grep -qx True || fail "RepoTags lack $ref"
  [ "$(json "$out" 'd[0]["Architecture"] + "/" + d[0]["Os"]')" = amd64/linux ] || fail "Architecture/Os are not amd64/linux"
  [ "$(json "$out" 'd[0]["Size"] > 1000000')" = True ] || fail "Size $(json "$out" 'd[0]["Size"]') is too small"

  step=up-to-date; h pull "$ref"
  expect_rc 0
  expect_out "^Status: Image is up to date for $ref\$"
  expect_out "^Digest: $digest\$"

  step=push-other-repo
  h tag "$ref" "$REGISTRY/other/busybox:2"; expect_rc 0
  h push "$REGISTRY/other/busybox:2"; expect_rc 0
  local pushed; pushed=$(skopeo_digest "$REGISTRY/other/busybox:2")
  expect_out "$pushed"
  rm -rf "$REG_WORK/oci-other"
  sk copy --quiet --src-tls-verify=false "docker://$REGISTRY/other/busybox:2" "oci:$REG_WORK/oci-other:2" ||
    fail "skopeo could not copy what hyper pushed"
  [ "$(sk inspect "oci:$REG_WORK/oci-other:2" | json - '" ".join(d["Layers"])')" = "$layers" ] ||
    fail "the pushed image's layers differ from the original's"
  [ "$(registry_config_digest "$REGISTRY/other/busybox:2")" = "$id" ] || fail "the pushed config is not $id"

  step='tag-push-by-tag'
  h tag "$ref" "$REGISTRY/test/busybox:v2"; expect_rc 0
  h push "$REGISTRY/test/busybox:v2"; expect_rc 0
  [ "$(registry_config_digest "$REGISTRY/test/busybox:v2")" = "$id" ] || fail "test/busybox:v2's config is not $id"
  [ "$(registry_layers "$REGISTRY/test/busybox:v2")" = "$layers" ] || fail "test/busybox:v2's layers differ"

  step=pull-by-digest
  local saved_root=$root; new_root
  h pull "$REGISTRY/test/busybox@$digest"
  expect_rc 0
  expect_out "^Digest: $digest\$"
  expect_last_line "$REGISTRY/test/busybox@$digest"
  [ "$(image_field "$REGISTRY/test/busybox@$digest" 'd[0]["Id"]')" = "$id" ] || fail "the image pulled by digest is not $id"
  check_blobs
  h rmi "$REGISTRY/test/busybox@$digest"; expect_rc 0
  h image prune -a -f; expect_rc 0
  [ "$(blob_count)" -eq 0 ] || fail "blobs left after rmi and prune: $(ls "$root/images/blobs/sha256")"
  root=$saved_root

  step=rmi
  h rmi "$ref" "$REGISTRY/other/busybox:2" "$REGISTRY/test/busybox:v2"; expect_rc 0
  h images -q; expect_rc 0
  [ -z "$(cat "$out")" ] || fail "images left after rmi: $(cat "$out")"
  h image inspect "$ref"
  expect_fail
  step=prune; h image prune -a -f; expect_rc 0
  [ "$(blob_count)" -eq 0 ] || fail "blobs left after image prune -a -f: $(ls "$root/images/blobs/sha256")"

  # Four hyper processes on one store at once: three pulls of the same image and a prune
  # (of untagged images: it may run before, between or after the pulls).
  # Every pull must succeed, and the store must hold exactly that image's blobs after.
  step=concurrent; new_root
  local pids=() i
  for i in 1 2 3; do
    timeout 150 "$hyper_bin" --root "$root" "${INSECURE[@]}" pull -q "$ref" >"$REG_WORK/pull$i.out" 2>&1 &
    pids+=($!)
  done
  timeout 150 "$hyper_bin" --root "$root" image prune -f >"$REG_WORK/prune.out" 2>&1 &
  pids+=($!)
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || fail "concurrent process $((i + 1)) failed: $(cat "$REG_WORK/pull$((i + 1)).out" "$REG_WORK/prune.out" 2>/dev/null)"
  done
  h images -q; expect_rc 0
  [ "$(cat "$out")" = "${id:7:12}" ] || fail "after concurrent pulls and a prune, images -q printed '$(cat "$out")'"
  check_blobs
  [ "$(blob_count)" -eq 5 ] || fail "$(blob_count) blobs after concurrent pulls, expected 5 (3 layers, config, manifest)"
  [ "$(partial_count)" -eq 0 ] || fail "concurrent pulls left partial downloads"
}

# HTTPS: hyper speaks TLS unless told otherwise, verifies the registry's certificate,
# and trusts a registry's own CA from <root>/certs.d/HOST:PORT/ca.crt, as Docker does
# from /etc/docker/certs.d.
group_tls() {
  registry_start tls
  INSECURE=()
  local ref=$REGISTRY/test/busybox:1 digest
  step=push-with-skopeo
  mkdir -p "$REG_WORK/skopeo-certs"; cp "$REGISTRY_CA" "$REG_WORK/skopeo-certs/ca.crt"
  make_three_layer_image "$REG_WORK/img.tar" test/busybox:1 >/dev/null
  sk copy --quiet --dest-cert-dir "$REG_WORK/skopeo-certs" "docker-archive:$REG_WORK/img.tar" "docker://$ref" ||
    fail "skopeo could not push over TLS"
  digest=$(sk inspect --cert-dir "$REG_WORK/skopeo-certs" --format '{{.Digest}}' "docker://$ref") || fail "skopeo inspect failed"

  step=untrusted; new_root
  h pull "$ref"
  expect_rc 1; expect_err "certificate"; expect_err "certs.d/$REGISTRY/ca.crt"
  [ "$(blob_count)" -eq 0 ] || fail "a refused pull stored blobs"

  step=trusted-ca
  mkdir -p "$root/certs.d/$REGISTRY"; cp "$REGISTRY_CA" "$root/certs.d/$REGISTRY/ca.crt"
  pull_ok "$ref" "$digest"

  step=push-over-tls
  h tag "$ref" "$REGISTRY/other/busybox:2"; expect_rc 0
  h push "$REGISTRY/other/busybox:2"; expect_rc 0
  sk copy --quiet --src-cert-dir "$REG_WORK/skopeo-certs" "docker://$REGISTRY/other/busybox:2" "oci:$REG_WORK/oci:x" ||
    fail "skopeo could not copy what hyper pushed over TLS"

  step=insecure-is-plain-http
  h --insecure-registry "$REGISTRY" pull "$ref"
  expect_rc 1
}

group_basic() {
  registry_start basic
  INSECURE=(--insecure-registry "$REGISTRY")
  local ref=$REGISTRY/test/busybox:1 digest
  step=push-with-skopeo
  make_three_layer_image "$REG_WORK/img.tar" test/busybox:1 >/dev/null
  skopeo_push "docker-archive:$REG_WORK/img.tar" "$ref"
  digest=$(skopeo_digest "$ref")

  step=pull-without-login; new_root
  h pull "$ref"
  expect_rc 1
  expect_err 'unauthorized\|authentication'
  [ "$(blob_count)" -eq 0 ] || fail "a refused pull stored blobs"

  step=login-wrong-password
  h_in nope login -u alice --password-stdin "$REGISTRY"
  expect_fail
  expect_err 'unauthorized\|authentication required'
  [ ! -s "$DOCKER_CONFIG/config.json" ] || ! grep -q "$REGISTRY" "$DOCKER_CONFIG/config.json" ||
    fail "a refused login stored credentials"

  step=login
  h_in "$REGISTRY_PASSWORD" login -u alice --password-stdin "$REGISTRY"
  expect_rc 0
  expect_out "Login Succeeded"
  [ -f "$DOCKER_CONFIG/config.json" ] || fail "login wrote no $DOCKER_CONFIG/config.json"
  [ "$(json "$DOCKER_CONFIG/config.json" 'd["auths"]["'"$REGISTRY"'"]["auth"]')" = "$(printf alice:wonderland | base64)" ] ||
    fail "config.json's auths[$REGISTRY].auth is not base64(alice:wonderland): $(cat "$DOCKER_CONFIG/config.json")"

  step=pull-after-login
  pull_ok "$ref" "$digest"
  step=push-after-login
  h tag "$ref" "$REGISTRY/pushed/busybox:1"; expect_rc 0
  h push "$REGISTRY/pushed/busybox:1"; expect_rc 0
  [ "$(registry_layers "$REGISTRY/pushed/busybox:1")" = "$(registry_layers "$ref")" ] || fail "pushed layers differ"

  step=login-p
  h login -u alice -p "$REGISTRY_PASSWORD" "$REGISTRY"
  expect_rc 0; expect_out "Login Succeeded"

  step=login-wrong-password-keeps-entry
  h_in wrong login -u alice --password-stdin "$REGISTRY"
  expect_fail
  expect_err 'unauthorized\|authentication required'

  step=logout
  h logout "$REGISTRY"
  expect_rc 0
  if [ -f "$DOCKER_CONFIG/config.json" ]; then
    [ "$(json "$DOCKER_CONFIG/config.json" '"'"$REGISTRY"'" in d.get("auths", {})')" = False ] ||
      fail "logout left $REGISTRY in config.json: $(cat "$DOCKER_CONFIG/config.json")"
  fi
  step=pull-after-logout; new_root
  h pull "$ref"
  expect_rc 1
  expect_err 'unauthorized\|authentication'
}

group_token() {
  registry_start token
  INSECURE=(--insecure-registry "$REGISTRY")
  local digest
  step=push-with-skopeo
  make_three_layer_image "$REG_WORK/img.tar" test/busybox:1 >/dev/null
  skopeo_push "docker-archive:$REG_WORK/img.tar" "$REGISTRY/public/busybox:1"
  skopeo_push "docker-archive:$REG_WORK/img.tar" "$REGISTRY/private/busybox:1"
  digest=$(skopeo_digest "$REGISTRY/public/busybox:1")

  step=anonymous-public-pull; new_root
  pull_ok "$REGISTRY/public/busybox:1" "$digest"
  grep -qE ' user=- scopes=(.* )?repository:public/busybox:pull( |,).*status=200' "$TOKEN_LOG" ||
    fail "the token server saw no anonymous pull token request for public/busybox"

  step=anonymous-push
  h tag "$REGISTRY/public/busybox:1" "$REGISTRY/public/pushed:1"; expect_rc 0
  h push "$REGISTRY/public/pushed:1"
  expect_rc 1
  expect_err 'unauthorized\|denied\|authentication required'

  step=anonymous-private-pull; new_root
  h pull "$REGISTRY/private/busybox:1"
  expect_rc 1
  expect_err 'unauthorized\|denied\|authentication required'
  [ "$(blob_count)" -eq 0 ] || fail "a refused pull stored blobs"

  step=login-wrong-password
  h_in nope login -u alice --password-stdin "$REGISTRY"
  expect_fail
  expect_err 'incorrect username or password'

  step=login
  h_in "$REGISTRY_PASSWORD" login -u alice --password-stdin "$REGISTRY"
  expect_rc 0
  expect_out "Login Succeeded"
  grep -q ' user=alice .*status=200' "$TOKEN_LOG" || fail "the token server issued no token to alice"

  step=push-after-login
  new_root
  pull_ok "$REGISTRY/private/busybox:1" "$digest"
  h tag "$REGISTRY/private/busybox:1" "$REGISTRY/private/pushed:1"; expect_rc 0
  h push "$REGISTRY/private/pushed:1"; expect_rc 0
  [ "$(registry_config_digest "$REGISTRY/private/pushed:1")" = "$(registry_config_digest "$REGISTRY/private/busybox:1")" ] ||
    fail "private/pushed:1 is not the image pushed"
  h tag "$REGISTRY/private/busybox:1" "$REGISTRY/public/pushed:1"; expect_rc 0
  h push "$REGISTRY/public/pushed:1"; expect_rc 0
  grep -qE ' user=alice scopes=.*repository:public/pushed:[a-z,]*push.* status=200 granted=.*"name":"public/pushed","actions":\[[^]]*"push"' "$TOKEN_LOG" ||
    fail "no push token for public/pushed was issued to alice"

  step=logout-then-private-pull
  h logout "$REGISTRY"; expect_rc 0
  new_root
  h pull "$REGISTRY/private/pushed:1"
  expect_rc 1
  expect_err 'unauthorized\|denied\|authentication required'
}

group_skopeo() {
  registry_start plain
  INSECURE=(--insecure-registry "$REGISTRY")
  local ref=$REGISTRY/test/busybox:1 id digest layers
  step=skopeo-to-hyper
  id=$(make_three_layer_image "$REG_WORK/img.tar" test/busybox:1)
  skopeo_push "docker-archive:$REG_WORK/img.tar" "$ref"
  digest=$(skopeo_digest "$ref")
  layers=$(registry_layers "$ref")
  new_root; local pull_root=$root
  pull_ok "$ref" "$digest"
  [ "$(image_field "$ref" 'd[0]["Id"]')" = "$id" ] || fail "the pulled image is not $id"

  step=skopeo-oci-to-hyper
  # The same image pushed by skopeo as an OCI manifest (--format oci).
  local oci_ref=$REGISTRY/test/oci:1 oci_digest
  skopeo_push "docker-archive:$REG_WORK/img.tar" "$oci_ref" --format oci
  [ "$(skopeo_inspect --raw "docker://$oci_ref" | json - 'd["mediaType"]')" = application/vnd.oci.image.manifest.v1+json ] ||
    fail "skopeo did not push an OCI manifest"
  oci_digest=$(skopeo_digest "$oci_ref")
  pull_ok "$oci_ref" "$oci_digest"
  [ "$(image_field "$oci_ref" 'd[0]["Id"]')" = "$(registry_config_digest "$oci_ref")" ] ||
    fail "the OCI image pulled has another ID than its config's digest"

  step=hyper-to-skopeo
  h tag "$ref" "$REGISTRY/hyper/pushed:1"; expect_rc 0
  h push "$REGISTRY/hyper/pushed:1"; expect_rc 0
  sk copy --quiet --src-tls-verify=false "docker://$REGISTRY/hyper/pushed:1" "oci:$REG_WORK/oci-pushed:1" ||
    fail "skopeo could not copy the image hyper pushed"
  [ "$(sk inspect "oci:$REG_WORK/oci-pushed:1" | json - '" ".join(d["Layers"])')" = "$layers" ] ||
    fail "the image hyper pushed has other layers"
  [ "$(registry_config_digest "$REGISTRY/hyper/pushed:1")" = "$id" ] || fail "the image hyper pushed has another config"

  step=hyper-loaded-to-skopeo
  mkdir -p "$REG_WORK/extra2"; echo other >"$REG_WORK/extra2/other.txt"
  local id2; id2=$(make_image "$REG_WORK/img2.tar" --tag loaded/busybox:1 --extra-layer "$REG_WORK/extra2")
  h load -i "$REG_WORK/img2.tar"; expect_rc 0
  h tag loaded/busybox:1 "$REGISTRY/hyper/loaded:1"; expect_rc 0
  h push "$REGISTRY/hyper/loaded:1"; expect_rc 0
  sk copy --quiet --src-tls-verify=false "docker://$REGISTRY/hyper/loaded:1" "oci:$REG_WORK/oci-loaded:1" ||
    fail "skopeo could not copy the loaded image hyper pushed (layers compressed by hyper)"
  [ "$(registry_config_digest "$REGISTRY/hyper/loaded:1")" = "$id2" ] || fail "the loaded image hyper pushed is not $id2"

  step=skopeo-docker-archive; new_root
  sk copy --quiet --src-tls-verify=false "docker://$ref" "docker-archive:$REG_WORK/x.tar:skopeo/x:1" ||
    fail "skopeo copy to docker-archive failed"
  h load -i "$REG_WORK/x.tar"; expect_rc 0
  expect_out "Loaded image: skopeo/x:1"
  [ "$(image_field skopeo/x:1 'd[0]["Id"]')" = "$id" ] || fail "skopeo's docker-archive loads as another image than the pull"

  step=skopeo-oci-archive
  # Converting to OCI, skopeo rewrites the config (another image ID): compare with its config.
  sk copy --quiet --src-tls-verify=false "docker://$ref" "oci-archive:$REG_WORK/y.tar:skopeo/y:1" ||
    fail "skopeo copy to oci-archive failed"
  h load -i "$REG_WORK/y.tar"; expect_rc 0
  expect_out "Loaded image: skopeo/y:1"
  [ "$(image_field skopeo/y:1 'd[0]["Id"]')" = "$(sk inspect --raw "oci-archive:$REG_WORK/y.tar" | json - 'd["config"]["digest"]')" ] ||
    fail "skopeo's oci-archive loads with another ID than its config's digest"
  [ "$(json "$out" '" ".join(d[0]["RootFS"]["Layers"])')" = "$(registry_diff_ids "$ref")" ] ||
    fail "skopeo's oci-archive loads with other layers than the pull"

  step=save-docker-archive; root=$pull_root
  h save -o "$REG_WORK/z.tar" "$ref"; expect_rc 0
  [ -s "$REG_WORK/z.tar" ] || fail "hyper save wrote nothing"
  sk inspect "docker-archive:$REG_WORK/z.tar" >"$REG_WORK/z.inspect" || fail "skopeo cannot read hyper save's output as a docker-archive"
  [ "$(sk inspect --config "docker-archive:$REG_WORK/z.tar" | json - '" ".join(d["rootfs"]["diff_ids"])')" = \
    "$(registry_diff_ids "$ref")" ] || fail "the saved image has other diff_ids"
  [ "$(sk inspect --raw "docker-archive:$REG_WORK/z.tar" | json - 'd["config"]["digest"]')" = "$id" ] ||
    fail "the saved image's config is not $id"
  sk copy --quiet "docker-archive:$REG_WORK/z.tar" "oci:$REG_WORK/oci-saved:z" || fail "skopeo copy docker-archive:z.tar oci: failed"
  [ "$(sk inspect --config "oci:$REG_WORK/oci-saved:z" | json - '" ".join(d["rootfs"]["diff_ids"])')" = \
    "$(registry_diff_ids "$ref")" ] || fail "skopeo's OCI copy of the saved image has other diff_ids"
  step=save-oci-archive
  # The listing first: under pipefail, `tar | grep -q` fails when grep leaves early.
  listing=$(tar -tf "$REG_WORK/z.tar") || fail "tar cannot list hyper save's output"
  grep -qx 'index.json' <<<"$listing" ||
    fail "hyper save wrote no index.json: not the combined docker-archive + OCI layout of Docker 25"
  grep -qx 'oci-layout' <<<"$listing" || fail "hyper save wrote index.json but no oci-layout"
  sk copy --quiet "oci-archive:$REG_WORK/z.tar" "oci:$REG_WORK/oci-saved2:z" || fail "skopeo cannot read hyper save's output as an oci-archive"
  [ "$(sk inspect --raw "oci-archive:$REG_WORK/z.tar" | json - 'd["config"]["digest"]')" = "$id" ] ||
    fail "the saved OCI image's config is not $id"
  step=save-load-roundtrip; new_root
  h load -i "$REG_WORK/z.tar"; expect_rc 0
  [ "$(image_field "$ref" 'd[0]["Id"]')" = "$id" ] || fail "hyper save | hyper load gives another image"
}

# flip_byte FILE: inverts the middle byte in place
flip_byte() {
  python3 - "$1" <<'PY'
import os, sys
with open(sys.argv[1], "r+b") as f:
    size = os.fstat(f.fileno()).st_size
    f.seek(size // 2); b = f.read(1); f.seek(size // 2); f.write(bytes([b[0] ^ 0xFF]))
PY
}

# The digest of REF's largest layer.
largest_layer() {
  skopeo_inspect --raw "docker://$1" | json - 'max(d["layers"], key=lambda l: l["size"])["digest"]'
}

group_failures() {
  registry_start plain
  INSECURE=(--insecure-registry "$REGISTRY")
  local id digest layer hex data bad

  step=corrupt-in-storage
  id=$(make_three_layer_image "$REG_WORK/img.tar" fail/corrupt:1)
  skopeo_push "docker-archive:$REG_WORK/img.tar" "$REGISTRY/fail/corrupt:1"
  digest=$(skopeo_digest "$REGISTRY/fail/corrupt:1")
  layer=$(largest_layer "$REGISTRY/fail/corrupt:1"); hex=${layer#sha256:}
  data=$REGISTRY_STORAGE/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data
  [ -f "$data" ] || fail "no $data in the registry's storage"
  flip_byte "$data"
  bad=$(sha256sum "$data" | cut -d' ' -f1)
  new_root
  h pull "$REGISTRY/fail/corrupt:1"
  expect_rc 1
  expect_err 'digest'
  h image inspect "$REGISTRY/fail/corrupt:1"
  expect_fail
  h images -q; [ -z "$(cat "$out")" ] || fail "a failed pull left an image: $(cat "$out")"
  check_blobs
  [ ! -e "$root/images/blobs/sha256/$hex" ] || fail "the corrupt layer is in the store"
  local f
  while IFS= read -r f; do
    [ "$(sha256sum "$f" | cut -d' ' -f1)" != "$bad" ] || fail "the corrupt content was kept in $f"
  done < <(find "$root/images" -type f -size +100k 2>/dev/null)
  step=corrupt-repaired
  flip_byte "$data"
  pull_ok "$REGISTRY/fail/corrupt:1" "$digest"

  step=corrupt-on-the-wire
  proxy_start --corrupt "/blobs/$layer:1"
  INSECURE=(--insecure-registry "$REGISTRY" --insecure-registry "$PROXY")
  new_root
  h pull "$PROXY/fail/corrupt:1"
  if [ "$rc" -eq 0 ]; then
    # Retrying a download that failed verification is allowed, but then it was downloaded twice.
    [ "$(proxy_count "^GET /v2/fail/corrupt/blobs/$layer ")" -ge 2 ] || fail "a corrupt download was accepted"
  else
    expect_rc 1
    expect_err 'digest'
    check_blobs
    [ ! -e "$root/images/blobs/sha256/$hex" ] || fail "the corrupt layer is in the store"
    step=corrupt-on-the-wire-retry
    pull_ok "$PROXY/fail/corrupt:1" "$digest"
  fi
  proxy_stop

  step=resume
  local big small
  mkdir -p "$REG_WORK/resume-extra"; echo resume >"$REG_WORK/resume-extra/r.txt"
  make_image "$REG_WORK/resume.tar" --tag fail/resume:1 --extra-layer "$REG_WORK/resume-extra" --pad-mb 6 >/dev/null
  skopeo_push "docker-archive:$REG_WORK/resume.tar" "$REGISTRY/fail/resume:1"
  digest=$(skopeo_digest "$REGISTRY/fail/resume:1")
  big=$(largest_layer "$REGISTRY/fail/resume:1")
  small=$(skopeo_inspect --raw "docker://$REGISTRY/fail/resume:1" | json - 'd["layers"][0]["digest"]')
  proxy_start --throttle "400000:/blobs/$big:1"
  INSECURE=(--insecure-registry "$REGISTRY" --insecure-registry "$PROXY")
  new_root
  echo "[$group/$step] hyper pull $PROXY/fail/resume:1 (throttled, to be killed)" >&2
  "$hyper_bin" --root "$root" "${INSECURE[@]}" pull "$PROXY/fail/resume:1" >"$out" 2>"$err" </dev/null &
  local pid=$! ready=
  for _ in $(seq 600); do
    if grep -qE "^GET /v2/fail/resume/blobs/$small .*status=200 " "$PROXY_LOG" &&
       [ -n "$(find "$root/images/partial" -type f -size +1000k 2>/dev/null)" ]; then
      ready=1; break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$ready" ]; then
    kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    fail "never saw the first layer complete and the big one partly downloaded in $root/images/partial (pull still running: $(kill -0 "$pid" 2>/dev/null && echo yes || echo no))"
  fi
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true
  local partial_size; partial_size=$(find "$root/images/partial" -type f -printf '%s\n' | sort -n | tail -n 1)
  echo "[$group/$step] killed with $partial_size bytes of $big downloaded" >&2
  for _ in $(seq 50); do grep -q "^GET /v2/fail/resume/blobs/$big .*aborted" "$PROXY_LOG" && break; sleep 0.1; done
  step=resume-rerun
  pull_ok "$PROXY/fail/resume:1" "$digest"
  local small_gets big_gets second
  small_gets=$(proxy_count "^GET /v2/fail/resume/blobs/$small ")
  [ "$small_gets" -eq 1 ] || fail "the finished first layer was downloaded $small_gets times"
  big_gets=$(proxy_count "^GET /v2/fail/resume/blobs/$big ")
  [ "$big_gets" -eq 2 ] || fail "the interrupted layer was requested $big_gets times, expected 2"
  second=$(grep -E "^GET /v2/fail/resume/blobs/$big " "$PROXY_LOG" | tail -n 1)
  [[ $second =~ range=bytes=([0-9]+)- ]] || fail "the second download of the interrupted layer had no Range header: $second"
  local from=${BASH_REMATCH[1]}
  { [ "$from" -gt 0 ] && [ "$from" -le "$partial_size" ]; } || fail "resumed from byte $from; $partial_size were on disk"
  [[ $second == *status=206* ]] || fail "the resumed download was not answered 206: $second"
  proxy_stop

  step=platform
  make_arch_index "$REG_WORK/arm64-layout" arm64/v8
  sk copy --quiet --all --dest-tls-verify=false "oci:$REG_WORK/arm64-layout:1" "docker://$REGISTRY/fail/arm64:1" ||
    fail "skopeo could not push the arm64-only index"
  [ "$(skopeo_inspect --raw "docker://$REGISTRY/fail/arm64:1" | json - 'd["manifests"][0]["platform"]["architecture"]')" = arm64 ] ||
    fail "the registry does not hold an arm64-only index"
  new_root
  h pull "$REGISTRY/fail/arm64:1"
  expect_rc 1
  expect_err 'platform\|linux/amd64\|no matching manifest'
  [ "$(blob_count)" -eq 0 ] || fail "a pull with no matching platform stored blobs"
  step='platform-arm64'
  h pull --platform linux/arm64 "$REGISTRY/fail/arm64:1"
  expect_rc 0
  [ "$(image_field "$REGISTRY/fail/arm64:1" 'd[0]["Architecture"]')" = arm64 ] || fail "the image pulled for linux/arm64 is not arm64"
  check_blobs

  step=status-faults
  make_image "$REG_WORK/small.tar" --tag fault/busy:1 >/dev/null
  skopeo_push "docker-archive:$REG_WORK/small.tar" "$REGISTRY/fault/busy:1"
  proxy_start --status-once '401:^/v2/fault/unauth/:*' --status-once '429:^/v2/fault/busy/manifests/:2' \
              --status-once '500:^/v2/fault/broken/:*'
  INSECURE=(--insecure-registry "$PROXY")
  new_root
  step=401; h pull "$PROXY/fault/unauth:1"
  expect_rc 1; expect_err 'unauthorized\|authentication required'
  step=404; h pull "$PROXY/no/such:repo"
  expect_rc 1; expect_err 'manifest unknown\|name unknown\|not found'
  step=429; h pull "$PROXY/fault/busy:1"
  expect_rc 0
  [ "$(proxy_count '^(GET|HEAD) /v2/fault/busy/manifests/1 .*status=429')" -eq 2 ] || fail "the proxy did not answer 429 twice"
  [ "$(proxy_count '^(GET|HEAD) /v2/fault/busy/manifests/1 .*status=200')" -ge 1 ] || fail "no manifest request after the 429s"
  step=500; h pull "$PROXY/fault/broken:1"
  expect_rc 1; expect_err 'fault-proxy injected 500'
  echo "[$group/$step] $(proxy_count '^GET /v2/fault/broken/') attempts before giving up" >&2

  step=invalid-references
  local before; before=$(wc -l <"$PROXY_LOG")
  # Not 'UPPER/case': like Docker's, hyper's grammar reads its first component as a registry
  # host (uppercase is allowed in host names), so it is a valid reference to host UPPER.
  local bad_ref
  for bad_ref in 'UPPERCASE' 'test/UPPER' "$PROXY/UPPER/case" 'a@sha256:xyz' "$PROXY/a@sha256:xyz" '' \
                 "$PROXY/a:b:c" "$PROXY/-a/b:1" "$PROXY/a/b:-1"; do
    h pull "$bad_ref"
    [ "$rc" -eq 125 ] || fail "hyper pull '$bad_ref' exited $rc, expected 125"
    [ -s "$err" ] || fail "hyper pull '$bad_ref' said nothing"
  done
  h pull "$PROXY/UPPER/case"; expect_err 'invalid reference\|lowercase'
  [ "$(wc -l <"$PROXY_LOG")" -eq "$before" ] || fail "invalid references reached the registry: $(tail -n +$((before + 1)) "$PROXY_LOG")"
  proxy_stop
}

group_chunked() {
  registry_start plain
  proxy_start
  INSECURE=(--insecure-registry "$REGISTRY" --insecure-registry "$PROXY")
  local ida idb
  step=chunked-push; new_root
  ida=$(make_image "$REG_WORK/a.tar" --tag chunk/a:1 --pad-mb 1)
  h load -i "$REG_WORK/a.tar"; expect_rc 0
  h tag chunk/a:1 "$PROXY/chunked/a:1"; expect_rc 0
  echo "[$group/$step] HYPER_PUSH_CHUNK_SIZE=65536" >&2
  HYPER_PUSH_CHUNK_SIZE=65536 h push "$PROXY/chunked/a:1"
  expect_rc 0
  local patches; patches=$(grep -E '^PATCH /v2/chunked/a/blobs/uploads/' "$PROXY_LOG" || true)
  [ "$(grep -c . <<<"$patches")" -ge 4 ] || fail "$(grep -c . <<<"$patches") PATCH requests for a 1 MiB layer in 64 KiB chunks"
  grep -q 'content-range=-' <<<"$patches" && fail "a PATCH without Content-Range: $(grep 'content-range=-' <<<"$patches" | head -n 1)"
  python3 - "$PROXY_LOG" <<'PY' || fail "PATCH chunks are not contiguous ranges of at most 65536 bytes"
import re, sys
uploads, chunks = {}, 0
for line in open(sys.argv[1]):
    m = re.match(r"PATCH /v2/chunked/a/blobs/uploads/([^?/ ]+)\S* range=\S+ content-range=(\d+)-(\d+) status=(\d+)", line)
    if not m:
        continue
    start, end, status = int(m.group(2)), int(m.group(3)), m.group(4)
    if end - start + 1 > 65536 or status != "202" or start != uploads.get(m.group(1), 0):
        print("bad chunk:", line.strip()[:200]); sys.exit(1)
    uploads[m.group(1)] = end + 1
    chunks += 1
if chunks < 4:
    print(f"only {chunks} PATCH requests with a Content-Range of the form START-END"); sys.exit(1)
PY
  rm -rf "$REG_WORK/oci-a"
  sk copy --quiet --src-tls-verify=false "docker://$REGISTRY/chunked/a:1" "oci:$REG_WORK/oci-a:1" ||
    fail "skopeo could not copy the image pushed in chunks"
  [ "$(registry_config_digest "$REGISTRY/chunked/a:1")" = "$ida" ] || fail "the image pushed in chunks is not $ida"

  step=cross-repo-mount-after-push
  mkdir -p "$REG_WORK/b-extra"; echo b >"$REG_WORK/b-extra/b.txt"
  idb=$(make_image "$REG_WORK/b.tar" --tag chunk/b:1 --extra-layer "$REG_WORK/b-extra")
  h load -i "$REG_WORK/b.tar"; expect_rc 0
  h tag chunk/b:1 "$PROXY/chunked/b:1"; expect_rc 0
  h push "$PROXY/chunked/b:1"; expect_rc 0
  grep -qE '^POST /v2/chunked/b/blobs/uploads/\?\S*mount=sha256\S*.* status=201' "$PROXY_LOG" ||
    fail "the shared busybox layer was not mounted from chunked/a (no POST ...?mount=...&from=... answered 201)"
  grep -E '^POST /v2/chunked/b/blobs/uploads/\?\S*mount=' "$PROXY_LOG" | grep -E 'from=chunked(%2F|/)a' >/dev/null ||
    fail "the mount does not name from=chunked/a"
  sk copy --quiet --src-tls-verify=false "docker://$REGISTRY/chunked/b:1" "oci:$REG_WORK/oci-b:1" ||
    fail "skopeo could not copy chunked/b"
  [ "$(registry_config_digest "$REGISTRY/chunked/b:1")" = "$idb" ] || fail "chunked/b:1 is not $idb"

  step=cross-repo-mount-after-pull; new_root
  h pull "$PROXY/chunked/a:1"; expect_rc 0
  h tag "$PROXY/chunked/a:1" "$PROXY/chunked/c:1"; expect_rc 0
  h push "$PROXY/chunked/c:1"; expect_rc 0
  local nlayers mounts
  nlayers=$(skopeo_inspect --raw "docker://$REGISTRY/chunked/a:1" | json - 'len(d["layers"])')
  mounts=$(proxy_count '^POST /v2/chunked/c/blobs/uploads/\?\S*mount=sha256\S*from=chunked(%2F|/)a.* status=201|^POST /v2/chunked/c/blobs/uploads/\?\S*from=chunked(%2F|/)a\S*mount=sha256.* status=201')
  local existing; existing=$(proxy_count '^HEAD /v2/chunked/c/blobs/sha256\S* .*status=200')
  [ $((mounts + existing)) -ge "$nlayers" ] || fail "$mounts of $nlayers layers of a pulled image were mounted from chunked/a"
  [ "$(proxy_count '^PATCH /v2/chunked/c/')" -eq 0 ] || fail "layers of chunked/c were uploaded instead of mounted"
  [ "$(registry_config_digest "$REGISTRY/chunked/c:1")" = "$ida" ] || fail "chunked/c:1 is not $ida"
}

case $group in
  plain|basic|token|tls|skopeo|failures|chunked) "group_$group" ;;
  *) echo "registry.sh: unknown group '$group' (plain basic token tls skopeo failures chunked)" >&2; exit 2 ;;
esac
step='done'
if [ -e "$REG_WORK/failed" ]; then
  echo "registry.$group: FAILED ($failures failures in the main shell, see above)" >&2
  exit 1
fi
echo "registry.$group: all checks passed"
