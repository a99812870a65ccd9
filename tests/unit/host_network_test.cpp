#include <doctest/doctest.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "guest-init/ipv4.hpp"
#include "guest-init/netlink.hpp"
#include "runtime/network/host_link.hpp"
#include "runtime/network/nat_rules.hpp"
#include "runtime/network/nft.hpp"
#include "tests/unit/netns_child.hpp"
#include "virtio/net.hpp"

using namespace hyper;
using namespace hyper::runtime::net;
using test::ChildChecks;

namespace {

std::vector<std::string> rule_texts(const Result<std::vector<NftRule>>& rules) {
  std::vector<std::string> texts;
  REQUIRE_MESSAGE(rules.ok(), rules.error().message);
  for (const NftRule& rule : *rules) texts.push_back(rule.chain + ": " + rule.statement);
  return texts;
}

}  // namespace

TEST_CASE("nat rules: a network's egress NAT and isolation") {
  CHECK(rule_texts(network_rules("hyper1", "10.88.3.7/16")) ==
        std::vector<std::string>{
            "postrouting: ip saddr 10.88.0.0/16 oifname != \"hyper1\" masquerade",
            "postrouting: ip saddr 127.0.0.0/8 oifname \"hyper1\" masquerade",
            "forward: iifname \"hyper1\" oifname \"hyper*\" oifname != \"hyper1\" drop",
        });
  CHECK(!network_rules("hyper 1", "10.88.0.0/16").ok());
  CHECK(!network_rules("hyper-name-too-long", "10.88.0.0/16").ok());
  CHECK(!network_rules("hyper1", "10.88.0.0").ok());
  CHECK(!network_rules("hyper1", "10.88.0.0/33").ok());
}

TEST_CASE("nat rules: published ports") {
  const std::vector<PublishedPort> ports = {{"", 8080, 80, "tcp"}, {"192.168.1.5", 5353, 53, "udp"},
                                            {"0.0.0.0", 443, 8443, "tcp"}};
  CHECK(rule_texts(port_rules("10.88.0.2", ports)) ==
        std::vector<std::string>{
            "prerouting: fib daddr type local tcp dport 8080 dnat to 10.88.0.2:80",
            "output: fib daddr type local tcp dport 8080 dnat to 10.88.0.2:80",
            "prerouting: ip daddr 192.168.1.5 udp dport 5353 dnat to 10.88.0.2:53",
            "output: ip daddr 192.168.1.5 udp dport 5353 dnat to 10.88.0.2:53",
            "prerouting: fib daddr type local tcp dport 443 dnat to 10.88.0.2:8443",
            "output: fib daddr type local tcp dport 443 dnat to 10.88.0.2:8443",
        });
  CHECK(rule_texts(port_rules("10.88.0.2", {})).empty());
  CHECK(!port_rules("10.88.0.02", ports).ok());
  CHECK(!port_rules("10.88.0.2", {{"", 80, 80, "sctp"}}).ok());
  CHECK(!port_rules("10.88.0.2", {{"", 0, 80, "tcp"}}).ok());
  CHECK(!port_rules("10.88.0.2", {{"localhost", 80, 80, "tcp"}}).ok());
}

TEST_CASE("nat rules: a floating address") {
  CHECK(rule_texts(floating_ip_rules("203.0.113.7", "10.88.0.2", "hyper1")) ==
        std::vector<std::string>{
            "prerouting: ip daddr 203.0.113.7 dnat to 10.88.0.2",
            "output: ip daddr 203.0.113.7 dnat to 10.88.0.2",
            "postrouting: ip saddr 10.88.0.2 oifname != \"hyper1\" snat to 203.0.113.7",
        });
  CHECK(!floating_ip_rules("203.0.113", "10.88.0.2", "hyper1").ok());
  CHECK(!floating_ip_rules("203.0.113.7", "10.88.0.2", "hyper\"1").ok());
}

TEST_CASE("nft: rule tags are checked before they reach nft text") {
  CHECK(check_tag("hyper:ctr:0123abcd").ok());
  CHECK(check_tag(std::string(128, 'a')).ok());
  CHECK(!check_tag(std::string(129, 'a')).ok());
  CHECK(!check_tag("").ok());
  CHECK(!check_tag("hyper:\"x").ok());
  CHECK(!check_tag("hyper:'x").ok());
  CHECK(!check_tag("hyper:x\n").ok());
  CHECK(!check_tag("hyper:\\x").ok());
}

// ---- Against the real kernel, in a network namespace of the test's own --------------

namespace {

constexpr const char* kBridge = "hypert0";
constexpr const char* kTap = "hypertap0";

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// 0 if a UDP socket can bind to the address, else the errno.
int bind_error(const char* text) {
  const UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = guest::parse_ipv4(text).value();
  return ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0 ? 0 : errno;
}

// Tap deletion on the last close runs in the kernel's netdev teardown; give it a moment.
bool link_disappears(const std::string& name) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto exists = link_exists(name);
    if (exists.ok() && !*exists) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string master_of(const std::string& link) {
  std::error_code error;
  const auto target = std::filesystem::read_symlink("/sys/class/net/" + link + "/master", error);
  return error ? std::string() : target.filename().string();
}

bool link_is_up(const std::string& name) {
  return (std::strtoul(read_text("/sys/class/net/" + name + "/flags").c_str(), nullptr, 16) & 1) != 0;
}

bool exists(const std::string& name) {
  auto found = link_exists(name);
  return found.ok() && *found;
}

void exercise_bridge(ChildChecks& checks) {
  const BridgeSpec spec{kBridge, guest::parse_ipv4("10.99.0.1").value(), 24};
  checks.expect(!exists(kBridge), "no bridge at first");
  checks.expect_ok(ensure_bridge(spec), "ensure_bridge");
  checks.expect_ok(ensure_bridge(spec), "ensure_bridge again");
  checks.expect(exists(kBridge), "the bridge exists");
  checks.expect(!exists("nosuch0"), "link_exists(nosuch0) is false");
  checks.expect(!link_exists("bad name").ok(), "link_exists refuses a bad name");
  checks.expect(link_is_up(kBridge), "the bridge is up");
  checks.expect(bind_error("10.99.0.1") == 0, "the bridge has the gateway address");
  checks.expect(read_text(std::string("/proc/sys/net/ipv4/conf/") + kBridge + "/route_localnet") == "1\n",
                "route_localnet is on for the bridge");
  checks.expect(read_text("/proc/sys/net/ipv4/ip_forward") == "1\n", "ip_forward is on");
}

void exercise_tap(ChildChecks& checks) {
  auto tap = create_bridged_tap(kTap, kBridge);
  checks.expect_ok(tap.ok() ? Status() : Status(tap.error()), "create_bridged_tap");
  if (!tap) return;
  checks.expect(master_of(kTap) == kBridge, std::string("the tap's master is the bridge, got ") + master_of(kTap));
  checks.expect(link_is_up(kTap), "the tap is up");
  checks.expect(!create_bridged_tap(kTap, kBridge).ok(), "a second tap of the same name is refused");
  checks.expect(!create_bridged_tap("hypertap1", "nosuchbr0").ok(), "a missing bridge is refused");

  // The VMM's virtio-net takes its own reference to the open tap.
  auto nic = virtio::Net::open({.tap = kTap, .tap_fd = tap->get(), .mac = std::nullopt});
  checks.expect_ok(nic.ok() ? Status() : Status(nic.error()), "Net::open over the tap's fd");
  tap->reset();
  checks.expect(exists(kTap), "the tap lives on while the NIC holds it");
  nic = make_error(Errc::io, "dropped");
  checks.expect(link_disappears(kTap), "the tap is gone once its last fd is closed");
  checks.expect(master_of(kTap).empty(), "and so is its bridge port");
}

void exercise_host_address(ChildChecks& checks) {
  const uint32_t address = guest::parse_ipv4("10.200.0.5").value();
  checks.expect_ok(add_host_address(kBridge, address, 32), "add_host_address");
  checks.expect_ok(add_host_address(kBridge, address, 32), "add_host_address again");
  checks.expect(bind_error("10.200.0.5") == 0, "the floating address is local");
  checks.expect_ok(remove_host_address(kBridge, address, 32), "remove_host_address");
  checks.expect_ok(remove_host_address(kBridge, address, 32), "remove_host_address again");
  checks.expect(bind_error("10.200.0.5") == EADDRNOTAVAIL, "the floating address is gone");
  checks.expect(!add_host_address("nosuch0", address, 32).ok(), "a missing interface is refused");
}

std::vector<std::string> sorted_tags(Nft& nft, ChildChecks& checks) {
  auto tags = rule_tags(nft, "hyper:test:");
  checks.expect_ok(tags.ok() ? Status() : Status(tags.error()), "rule_tags");
  if (!tags) return {};
  std::sort(tags->begin(), tags->end());
  return *tags;
}

std::vector<std::string> repeated(const std::string& tag, size_t count) { return std::vector<std::string>(count, tag); }

void add_tagged(Nft& nft, ChildChecks& checks, const std::string& tag, const Result<std::vector<NftRule>>& rules) {
  checks.expect(rules.ok(), "rules for " + tag + " build");
  if (rules) checks.expect_ok(add_rules(nft, tag, *rules), "add_rules " + tag);
}

void exercise_nft(ChildChecks& checks) {
  auto opened = Nft::open();
  checks.expect_ok(opened.ok() ? Status() : Status(opened.error()), "Nft::open");
  if (!opened) return;
  Nft& nft = *opened;
  checks.expect(sorted_tags(nft, checks).empty(), "no rules before the table exists");
  checks.expect_ok(delete_rules(nft, "hyper:test:ctr"), "delete_rules without a table");
  checks.expect_ok(ensure_table(nft), "ensure_table");
  checks.expect_ok(ensure_table(nft), "ensure_table again");

  add_tagged(nft, checks, "hyper:test:net", network_rules(kBridge, "10.99.0.0/24"));
  add_tagged(nft, checks, "hyper:test:ctr",
             port_rules("10.99.0.2", {{"", 8080, 80, "tcp"}, {"127.0.0.1", 5353, 53, "udp"}}));
  add_tagged(nft, checks, "hyper:test:fip", floating_ip_rules("10.200.0.5", "10.99.0.2", kBridge));
  std::vector<std::string> expected = repeated("hyper:test:ctr", 4);
  for (const char* tag : {"hyper:test:fip", "hyper:test:net"}) {
    for (const auto& entry : repeated(tag, 3)) expected.push_back(entry);
  }
  checks.expect(sorted_tags(nft, checks) == expected, "every rule carries its tag");
  checks.expect_ok(ensure_table(nft), "ensure_table with rules in it");
  checks.expect(sorted_tags(nft, checks) == expected, "ensure_table keeps the rules");

  checks.expect_ok(delete_rules(nft, "hyper:test:ctr"), "delete_rules hyper:test:ctr");
  expected.erase(expected.begin(), expected.begin() + 4);
  checks.expect(sorted_tags(nft, checks) == expected, "only the container's rules are gone");
  checks.expect_ok(delete_rules(nft, "hyper:test:ctr"), "delete_rules of no rule");
  checks.expect(rule_tags(nft, "hyper:test:n").value() == repeated("hyper:test:net", 3), "rule_tags by prefix");

  checks.expect(!add_rules(nft, "bad\"tag", {{"forward", "accept"}}).ok(), "a quote in a tag is refused");
  checks.expect(!add_rules(nft, "hyper:test:x", {{"input", "accept"}}).ok(), "an unknown chain is refused");
  checks.expect(!add_rules(nft, "hyper:test:x", {{"forward", "accept; add table ip other"}}).ok(),
                "a statement cannot smuggle in another command");
  const Status refused = add_rules(nft, "hyper:test:x", {{"forward", "ip daddr 10.0.0.1 frobnicate"}});
  checks.expect(!refused.ok() && refused.error().message.find("Error:") != std::string::npos,
                "nft's own message explains a refused rule: " + (refused.ok() ? "succeeded" : refused.error().message));
  checks.expect(sorted_tags(nft, checks) == expected, "a refused batch adds nothing");
  checks.expect(nft.list_json("list table ip hyper").ok(), "list_json");
}

void exercise_delete(ChildChecks& checks) {
  checks.expect_ok(delete_link(kBridge), "delete_link");
  checks.expect(!exists(kBridge), "the bridge is gone");
  checks.expect_ok(delete_link(kBridge), "delete_link of a missing link");
}

// ---- Traffic through a published port: a "container" namespace behind the bridge -------

constexpr const char* kContainerIp = "10.99.0.2";
constexpr uint16_t kContainerPort = 80;
constexpr uint16_t kPublishedPort = 8080;
constexpr int kTrafficTimeoutSeconds = 5;

sockaddr_in inet_address(const char* text, uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = guest::parse_ipv4(text).value();
  return address;
}

void set_timeouts(int fd) {
  const timeval timeout{kTrafficTimeoutSeconds, 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
}

// What the server at address:port says: the client address it saw. Empty on failure.
std::string ask_peer_address(const char* text, uint16_t port) {
  const UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  set_timeouts(fd.get());
  const sockaddr_in address = inet_address(text, port);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) return {};
  char buffer[32] = {};
  const ssize_t got = ::read(fd.get(), buffer, sizeof buffer - 1);
  return got > 0 ? std::string(buffer, static_cast<size_t>(got)) : std::string();
}

// The container: eth0 at 10.99.0.2/24 behind the bridge, a TCP server on port 80 telling
// each client its address. Runs in the grandchild's own namespace; `ready` gets a byte
// once that namespace exists and another once the server listens, `go` says eth0 arrived.
int serve_as_container(int ready, int go, int clients) {
  if (::unshare(CLONE_NEWNET) != 0 || ::write(ready, "n", 1) != 1) return 1;
  char byte;
  if (::read(go, &byte, 1) != 1) return 2;
  auto netlink = guest::Netlink::open();
  if (!netlink) return 3;
  const auto found = netlink->link_index("eth0");
  if (!found) return 4;
  const int eth0 = *found;
  if (!netlink->add_address(eth0, guest::parse_ipv4(kContainerIp).value(), 24).ok() ||
      !netlink->set_link_up(eth0).ok() ||
      !netlink->add_default_route(guest::parse_ipv4("10.99.0.1").value(), eth0).ok()) {
    return 4;
  }
  const UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  set_timeouts(listener.get());
  const sockaddr_in any = inet_address("0.0.0.0", kContainerPort);
  if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0 ||
      ::listen(listener.get(), 4) != 0 || ::write(ready, "l", 1) != 1) {
    return 5;
  }
  for (int served = 0; served < clients; ++served) {
    sockaddr_in peer{};
    socklen_t size = sizeof peer;
    const UniqueFd client(::accept(listener.get(), reinterpret_cast<sockaddr*>(&peer), &size));
    if (!client.valid()) return 6;
    const std::string text = guest::format_ipv4(peer.sin_addr.s_addr);
    (void)!::write(client.get(), text.data(), text.size());
  }
  return 0;
}

Status connect_container(pid_t container) {
  auto netlink = HYPER_TRY(guest::Netlink::open());
  HYPER_CHECK(netlink.send_request(guest::build_create_veth(netlink.next_seq(), "hyperv0", "eth0", container),
                                   "create veth hyperv0"));
  const int host_end = HYPER_TRY(netlink.link_index("hyperv0"));
  const int bridge = HYPER_TRY(netlink.link_index(kBridge));
  HYPER_CHECK(netlink.send_request(guest::build_set_link_master(netlink.next_seq(), host_end, bridge), "enslave"));
  HYPER_CHECK(netlink.set_link_up(host_end));
  return netlink.set_link_up(HYPER_TRY(netlink.link_index("lo")));
}

Status publish_container_port() {
  HYPER_CHECK(ensure_bridge({kBridge, guest::parse_ipv4("10.99.0.1").value(), 24}));
  auto nft = HYPER_TRY(Nft::open());
  HYPER_CHECK(add_rules(nft, "hyper:test:net", HYPER_TRY(network_rules(kBridge, "10.99.0.0/24"))));
  return add_rules(nft, "hyper:test:ctr",
                   HYPER_TRY(port_rules(kContainerIp, {{"", kPublishedPort, kContainerPort, "tcp"}})));
}

std::string exercise_traffic() {
  ChildChecks checks;
  checks.expect_ok(publish_container_port(), "publishing the port");
  int ready_fds[2], go_fds[2];
  if (::pipe2(ready_fds, O_CLOEXEC) != 0 || ::pipe2(go_fds, O_CLOEXEC) != 0) return "FAIL: pipe2\n";
  UniqueFd ready_read(ready_fds[0]), ready_write(ready_fds[1]), go_read(go_fds[0]), go_write(go_fds[1]);
  const pid_t container = ::fork();
  if (container < 0) return "FAIL: fork\n";
  if (container == 0) ::_exit(serve_as_container(ready_write.get(), go_read.get(), 2));
  ready_write.reset();
  char byte = 0;
  checks.expect(::read(ready_read.get(), &byte, 1) == 1 && byte == 'n', "the container namespace exists");
  checks.expect_ok(connect_container(container), "connecting the container to the bridge");
  checks.expect(::write(go_write.get(), "g", 1) == 1, "telling the container");
  checks.expect(::read(ready_read.get(), &byte, 1) == 1 && byte == 'l', "the container's server listens");
  // From 127.0.0.1: DNATed onto the bridge (route_localnet), then masqueraded to its address.
  const std::string from_loopback = ask_peer_address("127.0.0.1", kPublishedPort);
  checks.expect(from_loopback == "10.99.0.1", "127.0.0.1:8080 reaches the container as 10.99.0.1, got \"" +
                                                  from_loopback + "\"");
  const std::string from_bridge = ask_peer_address("10.99.0.1", kPublishedPort);
  checks.expect(from_bridge == "10.99.0.1", "10.99.0.1:8080 reaches the container, got \"" + from_bridge + "\"");
  int status = 0;
  const bool reaped = ::waitpid(container, &status, 0) == container;
  checks.expect(reaped && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "the container served both clients (status " + std::to_string(status) + ")");
  return checks.failures();
}

}  // namespace

TEST_CASE("host network: a published port reaches a container from 127.0.0.1") {
  REQUIRE_MESSAGE(::geteuid() == 0, "this test needs root: it creates network namespaces");
  const std::string report = test::run_in_new_network_namespace(exercise_traffic);
  CHECK_MESSAGE(report == "OK\n", report);
}

// Needs root (CAP_SYS_ADMIN for the namespace, CAP_NET_ADMIN in it); fails without.
TEST_CASE("host network: bridge, tap and nftables rules in a new network namespace") {
  REQUIRE_MESSAGE(::geteuid() == 0, "this test needs root: it creates a network namespace");
  const std::string report = test::run_in_new_network_namespace([] {
    ChildChecks checks;
    checks.expect_ok(test::mount_own_sysfs(), "a sysfs of the namespace's own");
    exercise_bridge(checks);
    exercise_tap(checks);
    exercise_host_address(checks);
    exercise_nft(checks);
    exercise_delete(checks);
    return checks.failures();
  });
  CHECK_MESSAGE(report == "OK\n", report);
}
