// What a client of hyperd's socket sends: any bytes at all, read as Beast reads an HTTP
// request, then routed and (for a create) turned into run flags, as the server does.
// Nothing may crash; a body of the wrong shape may only throw nlohmann's exceptions,
// which the server answers with a 400.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "runtime/api/create_body.hpp"
#include "runtime/api/http.hpp"

using namespace hyper::runtime;
namespace http = boost::beast::http;

namespace {

const api::Router& router() {
  static api::Router routes = [] {
    api::Router r;
    const auto none = [](const api::Request&, api::Exchange&) {};
    for (const char* pattern : {"/containers/create", "/containers/{id}/json", "/images/{name*}/json", "/images/{name*}",
                                "/exec/{id}/start", "/volumes/{name}"})
      r.add(http::verb::get, pattern, none);
    return r;
  }();
  return routes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  http::request_parser<http::string_body> parser;
  parser.body_limit(1 << 20);
  parser.eager(true);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec && ec != http::error::need_more) return 0;
  const auto& message = parser.get();
  const std::string_view target(message.target().data(), message.target().size());
  api::Request request;
  request.method = http::verb::get;
  const size_t question = target.find('?');
  request.path = std::string(target.substr(0, question));
  if (question != std::string_view::npos) request.query = api::parse_query(target.substr(question + 1));
  (void)api::compare_versions(request.path, api::kApiVersion);
  http::status refusal{};
  (void)router().find(request, refusal);
  const auto body = api::Json::parse(message.body(), nullptr, false);
  if (body.is_discarded()) return 0;
  try {
    (void)api::create_flags(body, request.arg("name"));
  } catch (const nlohmann::json::exception&) {
  }
  return 0;
}
