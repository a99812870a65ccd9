#include "guest-init/layer_export.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "guest-init/layer_apply.hpp"
#include "guest-init/tar_reader.hpp"
#include "vmm/unique_fd.hpp"

using namespace hyper;

namespace {

struct TempDir {
  TempDir() {
    char name[] = "/tmp/hyper-export-test-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path = name;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  void write(const std::string& rel, const std::string& content) const { std::ofstream(path + "/" + rel) << content; }
  std::string path;
};

// Runs the exporter into a temporary file and returns the archive's bytes.
std::string export_dir(const std::string& dir, layer::ExportStats* stats = nullptr) {
  UniqueFd in(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  REQUIRE(in.valid());
  char name[] = "/tmp/hyper-export-out-XXXXXX";
  UniqueFd out(::mkstemp(name));
  REQUIRE(out.valid());
  ::unlink(name);
  auto exported = layer::export_layer(in.get(), out.get());
  REQUIRE_MESSAGE(exported.ok(), (exported.ok() ? "" : exported.error().message));
  if (stats) *stats = *exported;
  std::string bytes(static_cast<size_t>(::lseek(out.get(), 0, SEEK_END)), '\0');
  REQUIRE(::pread(out.get(), bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
  return bytes;
}

std::map<std::string, tar::Entry> read_entries(const std::string& archive) {
  tar::MemorySource source(archive);
  tar::Reader reader(source);
  std::map<std::string, tar::Entry> entries;
  for (;;) {
    auto entry = reader.next();
    REQUIRE_MESSAGE(entry.ok(), (entry.ok() ? "" : entry.error().message));
    if (!*entry) break;
    entries[(*entry)->path] = **entry;
  }
  return entries;
}

}  // namespace

TEST_CASE("export: files, links, directories and metadata round-trip through the tar reader") {
  TempDir upper;
  REQUIRE(::mkdir((upper.path + "/etc").c_str(), 0750) == 0);
  upper.write("etc/config", "setting=1\n");
  REQUIRE(::chmod((upper.path + "/etc/config").c_str(), 0600) == 0);
  REQUIRE(::link((upper.path + "/etc/config").c_str(), (upper.path + "/etc/config.bak").c_str()) == 0);
  REQUIRE(::symlink("../etc/config", (upper.path + "/link").c_str()) == 0);
  REQUIRE(::mkfifo((upper.path + "/fifo").c_str(), 0640) == 0);
  const std::string long_name(150, 'n');
  upper.write(long_name, "long");
  REQUIRE(::setxattr((upper.path + "/etc/config").c_str(), "user.note", "kept", 4, 0) == 0);

  layer::ExportStats stats;
  const auto archive = export_dir(upper.path, &stats);
  CHECK(archive.size() % 512 == 0);
  CHECK(stats.bytes == archive.size());
  const auto entries = read_entries(archive);
  REQUIRE(entries.count("etc/"));
  CHECK(entries.at("etc/").type == tar::EntryType::directory);
  CHECK(entries.at("etc/").mode == 0750);
  REQUIRE(entries.count("etc/config"));
  const auto& config = entries.at("etc/config");
  CHECK(config.type == tar::EntryType::regular);
  CHECK(config.mode == 0600);
  CHECK(config.size == 10);
  CHECK(archive.substr(config.data_offset, config.size) == "setting=1\n");
  REQUIRE(config.xattrs.size() == 1);
  CHECK(config.xattrs[0].name == "user.note");
  CHECK(config.xattrs[0].value == "kept");
  CHECK(entries.at("etc/config.bak").type == tar::EntryType::hard_link);
  CHECK(entries.at("etc/config.bak").link_target == "etc/config");
  CHECK(entries.at("link").type == tar::EntryType::symlink);
  CHECK(entries.at("link").link_target == "../etc/config");
  CHECK(entries.at("fifo").type == tar::EntryType::fifo);
  REQUIRE(entries.count(long_name));  // through a pax path record
  CHECK(archive.substr(entries.at(long_name).data_offset, 4) == "long");
  CHECK(stats.whiteouts == 0);
}

TEST_CASE("export: the same directory gives the same bytes") {
  TempDir upper;
  for (const char* name : {"b", "a", "c"}) upper.write(name, name);
  CHECK(export_dir(upper.path) == export_dir(upper.path));
}

TEST_CASE("export: the files the agent writes at start stay out, and only those") {
  TempDir upper;
  REQUIRE(::mkdir((upper.path + "/etc").c_str(), 0755) == 0);
  REQUIRE(::mkdir((upper.path + "/sub").c_str(), 0755) == 0);
  REQUIRE(::mkdir((upper.path + "/sub/etc").c_str(), 0755) == 0);
  for (const char* name : {"etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/hosts.allow", "etc/motd",
                           "hostname", "hosts", "sub/etc/hostname", "sub/etc/resolv.conf"})
    upper.write(name, "x");
  // A file linked to etc/hosts is still exported whole, not as a link to a missing entry.
  REQUIRE(::link((upper.path + "/etc/hosts").c_str(), (upper.path + "/linked-hosts").c_str()) == 0);

  const auto entries = read_entries(export_dir(upper.path));
  std::vector<std::string> paths;
  for (const auto& [path, entry] : entries) paths.push_back(path);
  CHECK(paths == std::vector<std::string>{"etc/", "etc/hosts.allow", "etc/motd", "hostname", "hosts", "linked-hosts",
                                          "sub/", "sub/etc/", "sub/etc/hostname", "sub/etc/resolv.conf"});
  CHECK(entries.at("linked-hosts").type == tar::EntryType::regular);
}

TEST_CASE("export: a whiteout of a file the agent writes at start stays out too") {
  REQUIRE_MESSAGE(::geteuid() == 0, "overlayfs whiteouts are 0:0 device nodes: this test needs root");
  TempDir upper;
  REQUIRE(::mkdir((upper.path + "/etc").c_str(), 0755) == 0);
  REQUIRE(::mknod((upper.path + "/etc/resolv.conf").c_str(), S_IFCHR | 0, makedev(0, 0)) == 0);
  REQUIRE(::mknod((upper.path + "/etc/gone").c_str(), S_IFCHR | 0, makedev(0, 0)) == 0);
  layer::ExportStats stats;
  const auto entries = read_entries(export_dir(upper.path, &stats));
  CHECK(stats.whiteouts == 1);
  CHECK(entries.count("etc/.wh.gone") == 1);
  CHECK(entries.count("etc/.wh.resolv.conf") == 0);
}

TEST_CASE("export: overlayfs whiteouts and opaque directories become OCI whiteouts that apply") {
  REQUIRE_MESSAGE(::geteuid() == 0, "overlayfs whiteouts are 0:0 device nodes and opaque markers trusted.* xattrs: "
                                    "this test needs root (the test suite runs as root)");
  TempDir upper, lower;
  // The lower (image) side: files the container deleted and a directory it replaced.
  REQUIRE(::mkdir((lower.path + "/data").c_str(), 0755) == 0);
  lower.write("gone", "x");
  lower.write("data/old", "x");
  lower.write("kept", "x");
  // The upper side as overlayfs leaves it.
  REQUIRE(::mknod((upper.path + "/gone").c_str(), S_IFCHR | 0, makedev(0, 0)) == 0);
  REQUIRE(::mkdir((upper.path + "/data").c_str(), 0755) == 0);
  REQUIRE(::setxattr((upper.path + "/data").c_str(), "trusted.overlay.opaque", "y", 1, 0) == 0);
  upper.write("data/new", "fresh");

  layer::ExportStats stats;
  const auto archive = export_dir(upper.path, &stats);
  const auto entries = read_entries(archive);
  CHECK(stats.whiteouts == 2);
  REQUIRE(entries.count(".wh.gone"));
  CHECK(entries.at(".wh.gone").type == tar::EntryType::regular);
  REQUIRE(entries.count("data/.wh..wh..opq"));
  CHECK(entries.at("data/").xattrs.empty());  // overlayfs bookkeeping stays out of the layer

  UniqueFd root(::open(lower.path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  tar::MemorySource source(archive);
  auto applied = layer::apply_layer(root.get(), source);
  REQUIRE_MESSAGE(applied.ok(), (applied.ok() ? "" : applied.error().message));
  CHECK(!std::filesystem::exists(lower.path + "/gone"));
  CHECK(!std::filesystem::exists(lower.path + "/data/old"));
  CHECK(std::filesystem::exists(lower.path + "/data/new"));
  CHECK(std::filesystem::exists(lower.path + "/kept"));
}
