// Docker's `--change`/`-c` instructions of `commit` and `import`: Dockerfile lines that
// only touch an image's configuration, applied to the "config" object of an image config.
//
//   CMD / ENTRYPOINT   JSON form ["a","b"], or shell form (["/bin/sh","-c","a b"], or the
//                      config's "Shell"); an ENTRYPOINT drops the command unless a CMD
//                      came earlier in the same changes, as in a Dockerfile
//   ENV k=v k2="v 2"   or the legacy `ENV k the rest of the line`; replaces or appends
//   LABEL k=v ...      into "Labels"
//   USER, WORKDIR      (a relative WORKDIR is taken from the current one), STOPSIGNAL
//   EXPOSE 80 53/udp 8000-8002   into "ExposedPorts" as {"80/tcp": {}}
//   VOLUME /a /b  or ["/a"]      into "Volumes"
//
// Words are read the Dockerfile way (runtime/dockerfile_words.hpp): quotes, escapes, and
// $VAR, ${VAR:-default}, ... expanded from the config's Env as it is when the instruction
// starts, in every instruction but CMD and ENTRYPOINT (their shell does that). Other Dockerfile
// instructions (RUN, COPY, ONBUILD, HEALTHCHECK, ...) are refused: Errc::invalid_argument.
#pragma once

#include <string>
#include <vector>

#include "runtime/image_formats.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime::changes {

// Applies `changes` in order to `config` (an image config's "config" object; null becomes
// an object). On error `config` may be half-changed: callers apply to a copy they discard.
Status apply(formats::Json& config, const std::vector<std::string>& changes);

// Whether `changes` would apply to an empty configuration: lets a command refuse a bad
// --change before doing any work.
Status validate(const std::vector<std::string>& changes);

}  // namespace hyper::runtime::changes
