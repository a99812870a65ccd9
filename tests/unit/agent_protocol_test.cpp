// The agent protocol on the host, no VM: framing in both directions, the agent's request
// validation and the host's reading of replies (docs/agent-protocol.md).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "guest-init/messages.hpp"
#include "guest-init/protocol.hpp"
#include "runtime/agent_client.hpp"

using namespace hyper;
using agent::FrameDecoder;
using agent::Kind;

namespace {

template <class T>
std::string error_of(const Result<T>& result) {
  return result.ok() ? "" : result.error().message;
}

Result<guest::ProcessSpec> process_from(const std::string& json) {
  return guest::parse_process_spec(guest::Json::parse(json));
}

}  // namespace

TEST_CASE("agent protocol: frames survive any split of the byte stream") {
  const std::string stream = agent::encode_frame(Kind::request, R"({"op":"hello","version":1})") +
                             agent::encode_frame(Kind::stdin_data, std::string(70000, 'x')) +
                             agent::encode_frame(Kind::stdin_eof, "");
  FrameDecoder decoder;
  std::vector<agent::Frame> frames;
  for (char byte : stream) {
    decoder.feed(&byte, 1);
    while (auto item = decoder.next()) {
      REQUIRE(item->frame);
      frames.push_back(*item->frame);
    }
  }
  REQUIRE(frames.size() == 3);
  CHECK(frames[0].kind == Kind::request);
  CHECK(frames[0].payload == R"({"op":"hello","version":1})");
  CHECK(frames[1].payload.size() == 70000);
  CHECK(frames[2].kind == Kind::stdin_eof);
  CHECK(decoder.buffered() == 0);
}

TEST_CASE("agent protocol: an oversized or unknown frame is refused and the next one still decodes") {
  FrameDecoder decoder(16);
  std::string big = agent::encode_frame(Kind::request, std::string(100, 'a'));
  std::string unknown = agent::encode_frame(Kind::request, "zz");
  unknown[4] = 99;
  const std::string good = agent::encode_frame(Kind::request, "{}");

  SUBCASE("all at once") { decoder.feed((big + unknown + good).data(), big.size() + unknown.size() + good.size()); }
  SUBCASE("the big payload in pieces, never buffered") {
    decoder.feed(big.data(), 10);
    auto refused = decoder.next();
    REQUIRE(refused);
    CHECK(refused->problem);
    CHECK(refused->problem->message.find("exceeds the limit") != std::string::npos);
    decoder.feed(big.data() + 10, big.size() - 10);
    CHECK(decoder.buffered() == 0);
    big.clear();
    decoder.feed((unknown + good).data(), unknown.size() + good.size());
  }
  std::vector<std::string> problems;
  std::vector<agent::Frame> frames;
  while (auto item = decoder.next()) {
    if (item->problem) problems.push_back(item->problem->message);
    if (item->frame) frames.push_back(*item->frame);
  }
  CHECK(std::find_if(problems.begin(), problems.end(),
                     [](const std::string& m) { return m.find("unknown frame kind 99") != std::string::npos; }) !=
        problems.end());
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].payload == "{}");
}

TEST_CASE("agent protocol: requests must be objects with a string op") {
  CHECK(guest::parse_request(R"({"op":"stats"})").ok());
  for (const char* bad : {"", "not json", "[]", "42", R"({"op":7})", R"({"no":"op"})", R"({"op":""})"}) {
    CAPTURE(bad);
    CHECK_FALSE(guest::parse_request(bad).ok());
  }
}

TEST_CASE("agent protocol: a process spec is checked field by field") {
  auto good = process_from(R"({"args":["sh","-c","true"],"env":["A=1"],"cwd":"/w","user":"1000:1000","tty":true,
                               "umask":63,"rlimits":[{"type":"nofile","soft":10,"hard":20}],"rows":24,"cols":80})");
  REQUIRE_MESSAGE(good.ok(), error_of(good));
  CHECK(good->args.size() == 3);
  CHECK(good->cwd == "/w");
  CHECK(good->tty);
  CHECK(good->umask == 077);
  REQUIRE(good->rlimits.size() == 1);
  CHECK(good->rlimits[0].hard == 20);
  CHECK(good->rows == 24);
  CHECK(process_from(R"({"args":["true"]})")->cwd == "/");

  const std::pair<const char*, const char*> bad[] = {
      {R"({})", "args"},
      {R"({"args":[]})", "args"},
      {R"({"args":"sh"})", "array of strings"},
      {R"({"args":["a\u0000b"]})", "NUL"},
      {R"({"args":["sh"],"tty":"yes"})", "true or false"},
      {R"({"args":["sh"],"umask":-1})", "non-negative"},
      {R"({"args":["sh"],"umask":512})", "out of range"},
      {R"({"args":["sh"],"rlimits":[{"type":"bogus","soft":1,"hard":1}]})", "bogus"},
      {R"({"args":["sh"],"rlimits":[{"type":"nofile","soft":2,"hard":1}]})", "exceeds"},
  };
  for (const auto& [json_text, message] : bad) {
    // A copy: clang cannot capture a structured binding in CAPTURE's lambda.
    const std::string json = json_text;
    CAPTURE(json);
    const auto parsed = process_from(json);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().message.find(message) != std::string::npos);
  }
  CHECK_FALSE(process_from(R"({"args":[")" + std::string(70000, 'x') + R"("]})").ok());
}

TEST_CASE("agent protocol: start, build and export_disk specs accept only virtio disks") {
  auto start = guest::parse_container_spec(guest::Json::parse(R"({"rootfs":{"image":"/dev/vda","writable":""},"hostname":"h"})"));
  REQUIRE_MESSAGE(start.ok(), error_of(start));
  CHECK(start->rootfs.writable_device.empty());
  CHECK_FALSE(guest::parse_container_spec(guest::Json::parse(R"({"rootfs":{"image":"/etc/passwd"}})")).ok());
  CHECK_FALSE(guest::parse_container_spec(guest::Json::parse(R"({"rootfs":"x"})")).ok());
  CHECK_FALSE(guest::parse_container_spec(
                  guest::Json::parse(R"({"rootfs":{"image":"/dev/vda"},"hostname":")" + std::string(65, 'h') + "\"}"))
                  .ok());
  auto build = guest::parse_build_spec(
      guest::Json::parse(R"({"source":"/dev/vda","target":"/dev/vdb","layers":[{"offset":0,"size":10}]})"));
  REQUIRE_MESSAGE(build.ok(), error_of(build));
  CHECK(build->layers.size() == 1);
  CHECK_FALSE(guest::parse_build_spec(guest::Json::parse(R"({"source":"/dev/vda","target":"/dev/vdb"})")).ok());
  auto disk = guest::parse_export_disk_spec(guest::Json::parse(R"({"op":"export_disk","writable":"/dev/vda"})"));
  REQUIRE_MESSAGE(disk.ok(), error_of(disk));
  CHECK(*disk == "/dev/vda");
  CHECK_FALSE(guest::parse_export_disk_spec(guest::Json::parse(R"({"op":"export_disk"})")).ok());
  CHECK_FALSE(guest::parse_export_disk_spec(guest::Json::parse(R"({"writable":""})")).ok());
  CHECK_FALSE(guest::parse_export_disk_spec(guest::Json::parse(R"({"writable":"/run/rw/upper"})")).ok());
  CHECK_FALSE(guest::parse_export_disk_spec(guest::Json::parse(R"({"writable":7})")).ok());
}

TEST_CASE("agent protocol: a start request's identity (entropy, clock) and an interface's MAC") {
  auto start = guest::parse_container_spec(guest::Json::parse(
      R"({"rootfs":{"image":"/dev/vda"},"identity":{"entropy":"00ff7a","realtime_ns":1765000000123456789},)"
      R"("network":{"interfaces":[{"name":"eth0","address":"10.0.0.2/24","mac":"02:42:0a:00:00:02"}]}})"));
  REQUIRE_MESSAGE(start.ok(), error_of(start));
  CHECK(start->identity.entropy == std::vector<uint8_t>{0x00, 0xff, 0x7a});
  CHECK(start->identity.realtime_ns == 1765000000123456789ull);
  CHECK(start->network.interfaces.at(0).mac == "02:42:0a:00:00:02");
  start = guest::parse_container_spec(guest::Json::parse(R"({"rootfs":{"image":"/dev/vda"}})"));
  REQUIRE(start.ok());
  CHECK(start->identity.entropy.empty());
  CHECK_FALSE(start->identity.realtime_ns.has_value());
  for (const char* identity : {R"("x")", R"({"entropy":"abc"})", R"({"entropy":"zz"})", R"({"entropy":"0x"})",
                               R"({"realtime_ns":-1})", R"({"entropy":7})"}) {
    CAPTURE(identity);
    CHECK_FALSE(guest::parse_container_spec(
                    guest::Json::parse(std::string(R"({"rootfs":{"image":"/dev/vda"},"identity":)") + identity + "}"))
                    .ok());
  }
  CHECK_FALSE(guest::parse_container_spec(guest::Json::parse(
                  R"({"rootfs":{"image":"/dev/vda"},"identity":{"entropy":")" + std::string(1026, 'a') + "\"}}"))
                  .ok());
}

TEST_CASE("agent protocol: a host directory over virtio-fs as the root") {
  auto start = guest::parse_container_spec(guest::Json::parse(R"({"rootfs":{"virtiofs":"rootfs","read_only":true}})"));
  REQUIRE_MESSAGE(start.ok(), error_of(start));
  CHECK(start->rootfs.virtiofs_tag == "rootfs");
  CHECK(start->rootfs.read_only);
  CHECK(start->rootfs.image_device.empty());
  CHECK(start->rootfs.writable_device.empty());

  start = guest::parse_container_spec(guest::Json::parse(R"({"rootfs":{"virtiofs":"rootfs"}})"));
  REQUIRE_MESSAGE(start.ok(), error_of(start));
  CHECK_FALSE(start->rootfs.read_only);

  const std::pair<std::string, const char*> bad[] = {
      {R"({"rootfs":{"virtiofs":")" + std::string(37, 't') + R"("}})", "1 to 36 bytes"},
      {R"({"rootfs":{"virtiofs":7}})", "must be a string"},
      {R"({"rootfs":{"virtiofs":"rootfs","read_only":"yes"}})", "true or false"},
      {R"({"rootfs":{"virtiofs":""}})", "image"},
      {R"({"rootfs":{}})", "image"},
  };
  for (const auto& [json_text, message] : bad) {
    const std::string json = json_text;
    CAPTURE(json);
    const auto parsed = guest::parse_container_spec(guest::Json::parse(json));
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().message.find(message) != std::string::npos);
  }
}

TEST_CASE("agent protocol: a virtio-fs mount may bind one entry of its share") {
  auto start = guest::parse_container_spec(guest::Json::parse(
      R"({"rootfs":{"virtiofs":"rootfs"},"mounts":[{"type":"virtiofs","source":"files","subpath":"hosts","target":"/etc/hosts","read_only":true},
                                                   {"type":"virtiofs","source":"data","target":"/data"}]})"));
  REQUIRE_MESSAGE(start.ok(), error_of(start));
  REQUIRE(start->mounts.size() == 2);
  CHECK(start->mounts[0].type == guest::MountSpec::Type::virtiofs);
  CHECK(start->mounts[0].source == "files");
  CHECK(start->mounts[0].subpath == "hosts");
  CHECK(start->mounts[0].target == "/etc/hosts");
  CHECK(start->mounts[0].read_only);
  CHECK(start->mounts[1].subpath.empty());

  const auto mount_error = [](const std::string& mount) {
    const auto parsed = guest::parse_container_spec(guest::Json::parse(R"({"rootfs":{"image":"/dev/vda"},"mounts":[)" + mount + "]}"));
    return error_of(parsed);
  };
  for (const std::string& subpath : std::vector<std::string>{R"("a/b")", R"("..")", R"(".")", R"("/hosts")", R"("a\u0000b")",
                                                              "7", "\"" + std::string(256, 'n') + "\""}) {
    CAPTURE(subpath);
    CHECK_FALSE(mount_error(R"({"type":"virtiofs","source":"files","target":"/x","subpath":)" + subpath + "}").empty());
  }
  CHECK(mount_error(R"({"type":"virtiofs","source":"files","target":"/x","subpath":")" + std::string(255, 'n') + "\"}").empty());
  CHECK(mount_error(R"({"type":"block","source":"/dev/vdb","target":"/x","subpath":"hosts"})").find("subpath") !=
        std::string::npos);
  CHECK(mount_error(R"({"type":"tmpfs","target":"/x","subpath":"hosts"})").find("subpath") != std::string::npos);
}

TEST_CASE("agent protocol: a process's groups are exactly the gids given, or absent") {
  auto spec = process_from(R"({"args":["id"],"groups":[0,10,4294967295]})");
  REQUIRE_MESSAGE(spec.ok(), error_of(spec));
  REQUIRE(spec->groups);
  CHECK(*spec->groups == std::vector<uint32_t>{0, 10, 4294967295u});

  spec = process_from(R"({"args":["id"],"groups":[]})");
  REQUIRE_MESSAGE(spec.ok(), error_of(spec));
  REQUIRE(spec->groups);
  CHECK(spec->groups->empty());

  for (const char* absent : {R"({"args":["id"]})", R"({"args":["id"],"groups":null})"}) {
    CAPTURE(absent);
    spec = process_from(absent);
    REQUIRE_MESSAGE(spec.ok(), error_of(spec));
    CHECK_FALSE(spec->groups);
  }

  std::string many = "[0";
  for (int gid = 1; gid < 257; ++gid) many += "," + std::to_string(gid);
  many += "]";
  for (const std::string& groups :
       std::vector<std::string>{R"("wheel")", "10", "[-1]", "[4294967296]", R"(["10"])", "[1.5]", many}) {
    CAPTURE(groups);
    const auto parsed = process_from(R"({"args":["id"],"groups":)" + groups + "}");
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().message.find("group") != std::string::npos);
  }
}

TEST_CASE("agent protocol: replies carry Docker's exit codes to the host") {
  const std::string refused = guest::error_reply(make_error(Errc::not_found, "exec: \"x\": executable file not found"), 127);
  const auto frame = agent::Frame{Kind::response, refused};
  auto reply = runtime::parse_json_payload(frame);
  REQUIRE(reply.ok());
  CHECK_FALSE(reply->value("ok", true));
  int code = 0;
  const Error error = runtime::reply_error(*reply, &code);
  CHECK(code == 127);
  CHECK(error.code == Errc::not_found);
  CHECK(error.message.find("executable file not found") != std::string::npos);

  const auto ok = runtime::parse_json_payload(agent::Frame{Kind::response, guest::ok_reply({{"pid", 7}})});
  REQUIRE(ok.ok());
  CHECK(ok->value("ok", false));
  CHECK(ok->value("pid", 0) == 7);
  // A guest that sends garbage gets an error on the host, not an exception.
  CHECK_FALSE(runtime::parse_json_payload(agent::Frame{Kind::exit, "\xff{"}).ok());
  CHECK_FALSE(runtime::parse_json_payload(agent::Frame{Kind::exit, "[1]"}).ok());
}
