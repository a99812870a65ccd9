// hyperd's pieces that need no VM: query and version parsing, routing, the
// container-create body as run flags, the JSON views, and the HTTP layer over a real
// socket pair (hijack included).
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "runtime/api/create_body.hpp"
#include "runtime/api/http.hpp"

using namespace hyper::runtime;
using api::Json;
namespace http = api::http;

TEST_CASE("api: queries decode as Go's net/url writes them") {
  const auto query = api::parse_query("all=1&filters=%7B%22status%22%3A%5B%22exited%22%5D%7D&name=a+b&flag&x=%zz");
  CHECK(query.find("all")->second == "1");
  CHECK(query.find("filters")->second == R"({"status":["exited"]})");
  CHECK(query.find("name")->second == "a b");
  CHECK(query.find("flag")->second == "");
  CHECK(query.find("x")->second == "%zz");  // a broken escape is kept as it is
  CHECK(api::parse_query("").empty());
}

TEST_CASE("api: versions compare by their numbers") {
  CHECK(api::compare_versions("1.47", "1.47") == 0);
  CHECK(api::compare_versions("1.9", "1.47") < 0);
  CHECK(api::compare_versions("1.50", "1.47") > 0);
  CHECK(api::compare_versions("1", "1.0") == 0);
  CHECK(api::compare_versions("", "1.24") < 0);
  CHECK(api::compare_versions("x.y", "0.0") == 0);
}

TEST_CASE("api: routes match segments, captures and one greedy capture") {
  api::Router router;
  std::string hit;
  router.add(http::verb::get, "/containers/{id}/json", [&](const api::Request&, api::Exchange&) { hit = "inspect"; });
  router.add(http::verb::get, "/images/{name*}/json", [&](const api::Request&, api::Exchange&) { hit = "image"; });
  router.add(http::verb::delete_, "/images/{name*}", [&](const api::Request&, api::Exchange&) { hit = "rmi"; });
  http::status refusal{};
  api::Request request;
  request.method = http::verb::get;
  request.path = "/containers/abc/json";
  REQUIRE(router.find(request, refusal));
  CHECK(request.param("id") == "abc");
  request.path = "/images/localhost:5000/a/b:1/json";
  REQUIRE(router.find(request, refusal));
  CHECK(request.param("name") == "localhost:5000/a/b:1");
  request.method = http::verb::delete_;
  request.path = "/images/busybox%3Alatest";
  REQUIRE(router.find(request, refusal));
  CHECK(request.param("name") == "busybox:latest");
  request.method = http::verb::post;
  request.path = "/containers/abc/json";
  CHECK_FALSE(router.find(request, refusal));
  CHECK(refusal == http::status::method_not_allowed);
  request.path = "/nothing";
  CHECK_FALSE(router.find(request, refusal));
  CHECK(refusal == http::status::not_found);
  request.method = http::verb::head;  // HEAD is served by the GET route
  request.path = "/containers/x/json";
  CHECK(router.find(request, refusal));
}

TEST_CASE("api: a create body becomes the flags hyper run would have had") {
  const Json body = Json::parse(R"({
    "Image": "busybox", "Cmd": ["sh", "-c", "echo hi"], "Entrypoint": ["/bin/env", "-i"],
    "Env": ["A=1"], "Tty": true, "OpenStdin": true, "WorkingDir": "/w", "User": "1000",
    "HostConfig": {"AutoRemove": true, "Binds": ["vol:/data:ro"], "Memory": 536870912, "NanoCpus": 1500000000,
                   "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "53/udp": null},
                   "Tmpfs": {"/cache": "size=8m"}, "NetworkMode": "default",
                   "Mounts": [{"Type": "volume", "Source": "v2", "Target": "/v2", "ReadOnly": true}],
                   "SecurityOpt": ["seccomp=unconfined"]},
    "NetworkingConfig": {"EndpointsConfig": {"appnet": {"Aliases": ["db"]}}}})");
  const auto flags = api::create_flags(body, std::string("web"));
  REQUIRE(flags.ok());
  CHECK(flags->image == "busybox");
  CHECK(flags->name == std::optional<std::string>("web"));
  CHECK(flags->command == std::vector<std::string>{"sh", "-c", "echo hi"});
  CHECK(flags->entrypoint == std::optional<std::vector<std::string>>(std::vector<std::string>{"/bin/env", "-i"}));
  CHECK(flags->tty);
  CHECK(flags->interactive);
  CHECK(flags->remove);
  CHECK(flags->volumes == std::vector<std::string>{"vol:/data:ro"});
  CHECK(flags->mounts == std::vector<std::string>{"type=volume,target=/v2,source=v2,readonly"});
  CHECK(flags->tmpfs == std::vector<std::string>{"/cache:size=8m"});
  CHECK(flags->memory == "536870912");
  CHECK(flags->cpus == "2");  // 1.5 vCPUs: a VM has whole ones
  CHECK(flags->publish == std::vector<std::string>{"127.0.0.1:8080:80/tcp", "53/udp"});
  CHECK(flags->network == std::optional<std::string>("appnet"));
  CHECK(flags->network_aliases == std::vector<std::string>{"db"});
  CHECK_FALSE(flags->seccomp);
  const auto parsed_memory = parse_memory(flags->memory);
  REQUIRE(parsed_memory.ok());
  CHECK(*parsed_memory == 512);

  CHECK_FALSE(api::create_flags(Json::object(), std::nullopt).ok());
  CHECK_FALSE(api::create_flags(Json{{"Image", "x"}, {"HostConfig", {{"SecurityOpt", {"apparmor=x"}}}}}, std::nullopt).ok());
  // No entrypoint in the body keeps the image's; a null one too.
  const auto plain = api::create_flags(Json{{"Image", "x"}, {"Entrypoint", nullptr}}, std::nullopt);
  REQUIRE(plain.ok());
  CHECK_FALSE(plain->entrypoint);
  // A field of the wrong type throws; the server turns that into a 400.
  CHECK_THROWS((void)api::create_flags(Json{{"Image", 5}}, std::nullopt));
}

namespace {

// Serves `router` on one end of a socket pair; the test talks raw HTTP on the other.
struct Served {
  explicit Served(const api::Router& router) {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    client = fds[0];
    thread = std::thread([&router, fd = fds[1]] { api::serve_connection(api::plain_transport(hyper::UniqueFd(fd)), router); });
  }
  ~Served() {
    ::close(client);
    thread.join();
  }
  std::string exchange(const std::string& request, size_t at_least) {
    REQUIRE(::write(client, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
    std::string out;
    char buf[4096];
    while (out.size() < at_least) {
      const ssize_t n = ::read(client, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  int client = -1;
  std::thread thread;
};

}  // namespace

TEST_CASE("api: the HTTP layer answers, refuses versions, streams and hijacks") {
  api::Router router;
  router.add(http::verb::get, "/_ping", [](const api::Request&, api::Exchange& ex) {
    ex.send_text(http::status::ok, "OK", "text/plain");
  });
  router.add(http::verb::post, "/stream", [](const api::Request&, api::Exchange& ex) {
    ex.begin_stream(http::status::ok, "application/json");
    ex.write_chunk("{\"a\":1}\n");
    ex.end_stream();
  });
  router.add(http::verb::post, "/attach", [](const api::Request&, api::Exchange& ex) {
    REQUIRE(ex.upgrade("application/vnd.docker.raw-stream").ok());
    const std::string early = ex.take_buffered();  // sent right behind the request
    (void)ex.transport().write("echo:" + early);
  });
  Served served(router);
  auto reply = served.exchange("GET /v1.47/_ping HTTP/1.1\r\nHost: x\r\n\r\n", 1);
  while (reply.find("\r\n\r\nOK") == std::string::npos) reply += served.exchange("", 1);
  CHECK(reply.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(reply.find("Api-Version: 1.47\r\n") != std::string::npos);

  reply = served.exchange("GET /v1.99/_ping HTTP/1.1\r\nHost: x\r\n\r\n", 1);
  while (reply.find("}\n") == std::string::npos) reply += served.exchange("", 1);
  CHECK(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"));
  CHECK(reply.find("client version 1.99 is too new") != std::string::npos);

  reply = served.exchange("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 1);
  while (reply.find("}\n") == std::string::npos) reply += served.exchange("", 1);
  CHECK(reply.starts_with("HTTP/1.1 404 Not Found\r\n"));

  reply = served.exchange("POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 1);
  while (reply.find("0\r\n\r\n") == std::string::npos) reply += served.exchange("", 1);
  CHECK(reply.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(reply.find("8\r\n{\"a\":1}\n\r\n0\r\n\r\n") != std::string::npos);

  reply = served.exchange("POST /attach HTTP/1.1\r\nHost: x\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\nearly", 1);
  while (reply.find("echo:early") == std::string::npos) {
    const auto more = served.exchange("", 1);
    if (more.empty()) break;
    reply += more;
  }
  CHECK(reply.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
  CHECK(reply.find("Upgrade: tcp\r\n") != std::string::npos);
  CHECK(reply.find("echo:early") != std::string::npos);
}
