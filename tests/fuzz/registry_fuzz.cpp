// What a registry (or a token server, or anything posing as one) sends the pull: the
// WWW-Authenticate challenge, the token answer, and the manifest, index and config
// documents. The first byte picks the parser; none may crash, hang or throw.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/image_formats.hpp"
#include "runtime/registry_auth.hpp"

using namespace hyper::runtime;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      const auto challenges = auth::parse_www_authenticate(input);
      if (challenges.ok())
        for (const auto& challenge : *challenges)
          if (challenge.scheme.empty()) __builtin_trap();
      break;
    }
    case 1: {
      const auto token = auth::parse_token_response(input);
      if (token.ok() && token->value.empty()) __builtin_trap();
      break;
    }
    case 2: {
      (void)auth::base64_decode(input);
      break;
    }
    default: {
      const auto doc = formats::parse_json(input, "fuzz");
      if (!doc.ok()) break;
      const auto kind = formats::document_kind("", *doc, "fuzz");
      (void)formats::parse_manifest(*doc, "fuzz");
      (void)formats::parse_index(*doc, "fuzz");
      (void)formats::parse_config(*doc, "fuzz");
      (void)kind;
      break;
    }
  }
  return 0;
}
