// The networks' records and address leases, and the flags that ask for them; no host
// network is touched (tests/unit/host_network_test.cpp does that in its own namespace).
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "runtime/image_blobs.hpp"
#include "runtime/network/network_config.hpp"
#include "runtime/network/network_store.hpp"
#include "runtime/network/subnet.hpp"

using namespace hyper;
using namespace hyper::runtime::net;
namespace fs = std::filesystem;

namespace {

runtime::blobs::TempDir temp_dir() {
  auto dir = runtime::blobs::TempDir::create(fs::temp_directory_path());
  REQUIRE(dir.ok());
  return std::move(dir).value();
}

NetworkStore open_store(const fs::path& dir) {
  auto store = NetworkStore::open(dir);
  REQUIRE(store.ok());
  return std::move(store).value();
}

Endpoint endpoint_of(const std::string& hex_digit, pid_t pid = ::getpid()) {
  Endpoint endpoint;
  endpoint.container_id = std::string(64, hex_digit[0]);
  endpoint.container_name = "c" + hex_digit;
  endpoint.monitor_pid = pid;
  return endpoint;
}

// A pid that certainly names no live process: a child that has been reaped.
pid_t dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) _exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

}  // namespace

TEST_CASE("subnets parse strictly and do their arithmetic") {
  auto subnet = parse_subnet("10.1.2.0/24");
  REQUIRE(subnet.ok());
  CHECK(subnet->text() == "10.1.2.0/24");
  CHECK(subnet->broadcast() == *parse_address("10.1.2.255"));
  CHECK(subnet->contains(*parse_address("10.1.2.77")));
  CHECK_FALSE(subnet->contains(*parse_address("10.1.3.1")));
  CHECK(subnet->overlaps(*parse_subnet("10.1.0.0/16")));
  CHECK_FALSE(subnet->overlaps(*parse_subnet("10.1.3.0/24")));
  CHECK(parse_subnet("10.1.2.1/24").error().message.find("host bits are set (the network is 10.1.2.0/24)") != std::string::npos);
  CHECK_FALSE(parse_subnet("10.1.2.0/31").ok());
  CHECK_FALSE(parse_subnet("10.1.2.0").ok());
  CHECK_FALSE(parse_subnet("10.1.2.0/024").ok());

  const Subnet small = *parse_subnet("192.168.7.0/30");
  CHECK(first_free_host(small, {}) == *parse_address("192.168.7.1"));
  CHECK(first_free_host(small, {*parse_address("192.168.7.1")}) == *parse_address("192.168.7.2"));
  CHECK_FALSE(first_free_host(small, {*parse_address("192.168.7.1"), *parse_address("192.168.7.2")}));
}

TEST_CASE("the host's routes are read from /proc/net/route's little-endian words") {
  const std::string text =
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
      "eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
      "eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
      "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
  const auto routes = parse_proc_net_route(text);
  REQUIRE(routes.size() == 2);  // the default route shadows nothing
  CHECK(routes[0].text() == "192.168.2.0/24");
  CHECK(routes[1].text() == "172.17.0.0/16");
}

TEST_CASE("-p takes Docker's forms") {
  auto one = parse_publish("8080:80");
  REQUIRE(one.ok());
  REQUIRE(one->size() == 1);
  CHECK((*one)[0] == PortMapping{"", 8080, 80, "tcp"});
  CHECK((*parse_publish("127.0.0.1:5353:53/udp"))[0] == PortMapping{"127.0.0.1", 5353, 53, "udp"});
  CHECK((*parse_publish("0.0.0.0:8080:80"))[0] == PortMapping{"", 8080, 80, "tcp"});
  CHECK((*parse_publish("80"))[0] == PortMapping{"", 0, 80, "tcp"});
  CHECK((*parse_publish("127.0.0.1::80"))[0] == PortMapping{"127.0.0.1", 0, 80, "tcp"});
  auto range = parse_publish("8000-8002:80-82");
  REQUIRE(range.ok());
  REQUIRE(range->size() == 3);
  CHECK((*range)[2] == PortMapping{"", 8002, 82, "tcp"});
  for (const char* bad : {"", "80/sctp", "0:80", "8080:65536", "8000-8001:80", "a:80", "300.1.1.1:80:80", "8080:80-79", ":"})
    CHECK_MESSAGE(!parse_publish(bad).ok(), bad);
  CHECK(port_text(PortMapping{"", 8080, 80, "tcp"}) == "0.0.0.0:8080->80/tcp");
}

TEST_CASE("--link, --add-host and EXPOSE keys") {
  CHECK(*parse_link("db") == Link{"db", "db"});
  CHECK(*parse_link("/db:database") == Link{"db", "database"});
  CHECK_FALSE(parse_link(":x").ok());
  CHECK_FALSE(parse_link("db:").ok());
  CHECK(*parse_add_host("registry.test:10.0.0.9") == "10.0.0.9 registry.test");
  CHECK(*parse_add_host("h=10.0.0.9") == "10.0.0.9 h");
  CHECK_FALSE(parse_add_host("h:nope").ok());
  CHECK_FALSE(parse_add_host("10.0.0.9").ok());
  CHECK(*exposed_port_mapping("53/udp") == PortMapping{"", 0, 53, "udp"});
  CHECK(*exposed_port_mapping("80") == PortMapping{"", 0, 80, "tcp"});
}

TEST_CASE("a container's network config and endpoint survive their JSON") {
  NetworkConfig config;
  config.network = "front";
  config.aliases = {"web"};
  config.ports = {{"127.0.0.1", 8080, 80, "tcp"}};
  config.links = {{"db", "database"}};
  config.dns = {"10.0.0.53"};
  config.dns_search = {"example.test"};
  config.extra_hosts = {"10.0.0.9 h"};
  const NetworkConfig back = parse_config_json(config_json(config));
  CHECK(back.network == "front");
  CHECK(back.aliases == config.aliases);
  CHECK(back.ports == config.ports);
  CHECK(back.links == config.links);
  CHECK(back.dns == config.dns);
  CHECK(back.dns_search == config.dns_search);
  CHECK(back.extra_hosts == config.extra_hosts);

  EndpointState endpoint{"id", "front", "10.5.0.2/24", "10.5.0.1", "02:42:0a:05:00:02", "hyt123", "hyper-abc", {{"", 32768, 80, "tcp"}}};
  const EndpointState again = parse_endpoint_json(endpoint_json(endpoint));
  CHECK(again.address == endpoint.address);
  CHECK(again.bridge == endpoint.bridge);
  CHECK(again.ports == endpoint.ports);
}

TEST_CASE("the store has a default network and refuses what Docker refuses") {
  const auto dir = temp_dir();
  const NetworkStore store = open_store(dir.path() / "networks");
  auto networks = store.list();
  REQUIRE(networks.ok());
  REQUIRE(networks->size() == 1);
  CHECK((*networks)[0].name == "bridge");
  CHECK((*networks)[0].bridge == "hyper0");
  CHECK((*networks)[0].subnet.text() == kDefaultSubnet);
  CHECK(open_store(dir.path() / "networks").list()->size() == 1);  // not made twice

  NetworkStore writable = open_store(dir.path() / "networks");
  for (const char* reserved : {"bridge", "host", "none"}) CHECK_FALSE(writable.create({reserved, {}, {}}, {}).ok());
  CHECK_FALSE(writable.create({"bad name", {}, {}}, {}).ok());
  CHECK(writable.remove((*networks)[0]).error().message.find("pre-defined") != std::string::npos);

  auto front = writable.create({"front", std::string("10.77.0.0/24"), std::string("10.77.0.254")}, {});
  REQUIRE(front.ok());
  CHECK(front->gateway == *parse_address("10.77.0.254"));
  CHECK(front->bridge.size() == 15);
  CHECK(front->bridge.rfind("hyper-", 0) == 0);
  CHECK(writable.create({"front", {}, {}}, {}).error().message.find("already exists") != std::string::npos);
  CHECK(writable.create({"other", std::string("10.77.0.128/25"), {}}, {}).error().message.find("overlaps network \"front\"") !=
        std::string::npos);
  CHECK_FALSE(writable.create({"gw", std::string("10.78.0.0/24"), std::string("10.79.0.1")}, {}).ok());

  // The automatic choice avoids the host's own routes and the other networks.
  auto automatic = writable.create({"auto", {}, {}}, {*parse_subnet("172.30.0.0/16")});
  REQUIRE(automatic.ok());
  CHECK(automatic->subnet.text() == "172.29.0.0/16");
  CHECK(automatic->gateway == *parse_address("172.29.0.1"));

  CHECK(writable.find("front")->id == front->id);
  CHECK(writable.find(front->id.substr(0, 10))->name == "front");
  CHECK(writable.find("missing").error().code == Errc::not_found);
  CHECK(writable.list()->size() == 3);
  CHECK((*writable.list())[0].name == "bridge");  // the default first
}

TEST_CASE("leases take the lowest free address; a dead monitor's lease is stale") {
  const auto dir = temp_dir();
  NetworkStore store = open_store(dir.path() / "networks");
  const Network network = *store.create({"n", std::string("10.9.0.0/29"), {}}, {});
  auto a = store.attach(network, endpoint_of("a"));
  auto b = store.attach(network, endpoint_of("b"));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(address_text(a->address) == "10.9.0.2");  // .1 is the gateway
  CHECK(address_text(b->address) == "10.9.0.3");
  CHECK(address_text(store.attach(network, endpoint_of("a"))->address) == "10.9.0.2");  // its own again
  CHECK(store.endpoints(network)->size() == 2);
  CHECK(store.remove(network).error().message.find("active endpoints") != std::string::npos);

  auto stale = store.attach(network, endpoint_of("c", dead_pid()));
  REQUIRE(stale.ok());
  CHECK(store.endpoints(network)->size() == 2);  // not listed
  CHECK(address_text(store.attach(network, endpoint_of("d"))->address) == address_text(stale->address));  // reused

  for (const char* id : {"a", "b", "c", "d"}) REQUIRE(store.detach_everywhere(std::string(64, id[0])).ok());
  CHECK(store.endpoints(network)->empty());
  REQUIRE(store.remove(network).ok());
  CHECK(store.find("n").error().code == Errc::not_found);
}

TEST_CASE("a full subnet says so") {
  const auto dir = temp_dir();
  NetworkStore store = open_store(dir.path() / "networks");
  const Network network = *store.create({"tiny", std::string("10.9.1.0/30"), {}}, {});
  REQUIRE(store.attach(network, endpoint_of("a")).ok());
  CHECK(store.attach(network, endpoint_of("b")).error().message.find("no address is left") != std::string::npos);
}
