#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "guest-init/users.hpp"
#include "vmm/unique_fd.hpp"

using namespace hyper;
using namespace hyper::guest;

namespace {

const std::string kPasswd =
    "# the image's users\n"
    "root:x:0:0:root:/root:/bin/sh\n"
    "\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "alice:x:1000:1000:Alice:/home/alice:/bin/bash\n"
    "bob:x:1001:1001::/home/bob:/bin/sh\r\n"
    "nohome:x:1002:1002:::/bin/sh\n"
    "short:x:1003:1003\n"
    "badid:x:abc:1::/bad:/bin/sh\n"
    "huge:x:2147483648:1::/huge:/bin/sh\n"
    "alice:x:2000:2000::/second-alice:/bin/sh\n"
    "::::::\n";

const std::string kGroup =
    "root:x:0:\n"
    "wheel:x:10:root,alice\n"
    "   # an indented comment\n"
    "staff:x:50:alice,bob\r\n"
    "users:x:100:bob\n"
    "again:x:50:alice\n"
    "alice:x:1000:\n"
    "near:x:60:alicex,xalice,ALICE\n"
    "short:x:70\n"
    "bad:x:-5:alice\n";

ResolvedUser resolve(std::string_view spec) {
  auto user = resolve_user(spec, kPasswd, kGroup);
  if (!user) FAIL_CHECK(user.error().message);
  REQUIRE(user.ok());
  return std::move(user).value();
}

std::string resolve_error(std::string_view spec, std::optional<std::string_view> passwd = kPasswd,
                          std::optional<std::string_view> group = kGroup) {
  auto user = resolve_user(spec, passwd, group);
  REQUIRE_FALSE(user.ok());
  return user.error().message;
}

using Gids = std::vector<uint32_t>;

}  // namespace

TEST_CASE("users: the empty spec is root, with root's passwd entry") {
  const ResolvedUser user = resolve("");
  CHECK(user.uid == 0);
  CHECK(user.gid == 0);
  CHECK(user.home == "/root");
  CHECK(user.name == "root");
  CHECK(user.supplementary_gids == Gids{10});
}

TEST_CASE("users: by name") {
  const ResolvedUser alice = resolve("alice");
  CHECK(alice.uid == 1000);
  CHECK(alice.gid == 1000);
  CHECK(alice.home == "/home/alice");  // the first of two "alice" entries
  CHECK(alice.name == "alice");
  CHECK(alice.supplementary_gids == Gids{10, 50});  // "again" has gid 50 too: once

  const ResolvedUser bob = resolve("bob");  // a CRLF line
  CHECK(bob.uid == 1001);
  CHECK(bob.home == "/home/bob");
  CHECK(bob.supplementary_gids == Gids{50, 100});

  CHECK(resolve("nohome").home == "/");
  CHECK(resolve("daemon").supplementary_gids.empty());
  CHECK(resolve("alice:").uid == 1000);  // an empty group part is no group part
}

TEST_CASE("users: a name that is not in passwd is an error") {
  CHECK(resolve_error("carol") == "unable to find user carol: no matching entries in passwd file");
  // Skipped lines do not count: too few fields, bad or out-of-range ids.
  CHECK(resolve_error("short").find("unable to find user short") == 0);
  CHECK(resolve_error("badid").find("unable to find user badid") == 0);
  CHECK(resolve_error("huge").find("unable to find user huge") == 0);
  CHECK(resolve_user("carol", kPasswd, kGroup).error().code == Errc::not_found);
}

TEST_CASE("users: by uid") {
  const ResolvedUser alice = resolve("1000");
  CHECK(alice.name == "alice");
  CHECK(alice.gid == 1000);
  CHECK(alice.home == "/home/alice");
  CHECK(alice.supplementary_gids == Gids{10, 50});

  const ResolvedUser unknown = resolve("4242");
  CHECK(unknown.uid == 4242);
  CHECK(unknown.gid == 0);
  CHECK(unknown.home == "/");
  CHECK(unknown.name.empty());
  CHECK(unknown.supplementary_gids.empty());

  CHECK(resolve("1003").gid == 0);  // only on a line with too few fields: no entry
  CHECK(resolve("007").uid == 7);   // decimal, as runc reads it
  CHECK(resolve("2147483647").uid == 2147483647u);
}

TEST_CASE("users: ids must be decimal and at most 2^31-1") {
  for (const char* spec : {"2147483648", "4294967296", "99999999999999999999", "-1", "+1", "1e3", "0x10", "12abc",
                           "1 ", "alice:-1", "alice:1e3", "alice:2147483648", "1000:+5"}) {
    CAPTURE(spec);
    auto user = resolve_user(spec, kPasswd, kGroup);
    REQUIRE_FALSE(user.ok());
    CHECK(user.error().code == Errc::invalid_argument);
    CHECK(user.error().message.find("invalid user spec") == 0);
  }
  CHECK(resolve_error("1e3") ==
        "invalid user spec \"1e3\": \"1e3\" is not a valid uid (decimal, 0 to 2147483647)");
  CHECK(resolve_error("alice:-1").find("is not a valid gid") != std::string::npos);
  CHECK(resolve_error("a:b:c") == "invalid user spec \"a:b:c\": expected user[:group]");
}

TEST_CASE("users: an explicit group") {
  const ResolvedUser named = resolve("alice:staff");
  CHECK(named.uid == 1000);
  CHECK(named.gid == 50);
  CHECK(named.home == "/home/alice");
  // As runc: supplementary groups only come with the implicit form.
  CHECK(named.supplementary_gids.empty());

  CHECK(resolve("alice:777").gid == 777);  // a gid need not be listed
  CHECK(resolve("alice:100").gid == 100);
  const ResolvedUser numeric = resolve("4242:staff");
  CHECK(numeric.uid == 4242);
  CHECK(numeric.gid == 50);
  CHECK(resolve("4242:99").gid == 99);
  CHECK(resolve(":staff").uid == 0);
  CHECK(resolve(":staff").gid == 50);
  CHECK(resolve(":staff").home == "/root");

  CHECK(resolve_error("alice:nogroup") == "unable to find group nogroup: no matching entries in group file");
  CHECK(resolve_error("alice:short").find("unable to find group short") == 0);  // too few fields
  CHECK(resolve_error("alice:bad").find("unable to find group bad") == 0);      // bad gid
}

TEST_CASE("users: missing passwd and group files") {
  SUBCASE("no passwd") {
    auto root = resolve_user("", std::nullopt, kGroup).value();
    CHECK(root.uid == 0);
    CHECK(root.gid == 0);
    CHECK(root.home == "/");
    CHECK(root.name.empty());
    CHECK(root.supplementary_gids.empty());
    auto numeric = resolve_user("1000:staff", std::nullopt, kGroup).value();
    CHECK(numeric.uid == 1000);
    CHECK(numeric.gid == 50);
    CHECK(resolve_error("alice", std::nullopt) ==
          "unable to find user alice: no matching entries in passwd file (the image has none)");
  }
  SUBCASE("no group") {
    auto alice = resolve_user("alice", kPasswd, std::nullopt).value();
    CHECK(alice.gid == 1000);
    CHECK(alice.supplementary_gids.empty());
    CHECK(resolve_user("alice:50", kPasswd, std::nullopt).value().gid == 50);
    CHECK(resolve_error("alice:staff", kPasswd, std::nullopt) ==
          "unable to find group staff: no matching entries in group file (the image has none)");
  }
  SUBCASE("empty files are files without entries") {
    CHECK(resolve_user("", "", "").value().home == "/");
    CHECK(resolve_error("alice", "", "").find("(the image has none)") == std::string::npos);
  }
}

TEST_CASE("users: hostile files") {
  SUBCASE("an overlong line is skipped, the next one still counts") {
    const std::string passwd = "eve:x:3000:3000:" + std::string(kMaxUserFileLine, 'g') + ":/home/eve:/bin/sh\n" +
                               "mallory:x:3001:3001::/home/mallory:/bin/sh\n";
    CHECK(resolve_error("eve", passwd, kGroup).find("unable to find user eve") == 0);
    CHECK(resolve_user("mallory", passwd, kGroup).value().uid == 3001);
  }
  SUBCASE("a last line without a newline, NULs, lone colons") {
    const std::string passwd = std::string("x\0y:x:5:5::/n:/s\n", 17) + ":::::::\n::\n\n\n" + "last:x:6:6::/last:/bin/sh";
    CHECK(resolve_user("last", passwd, "").value().home == "/last");
    CHECK(resolve_user(std::string_view("x\0y", 3), passwd, "").value().uid == 5);
    CHECK(resolve_error("x", passwd, "").find("unable to find user x") == 0);
  }
  SUBCASE("error messages do not carry raw control characters or unbounded text") {
    const std::string message = resolve_error("\x1b[2J" + std::string(10000, 'a'));
    CHECK(message.find('\x1b') == std::string::npos);
    CHECK(message.size() < 200);
  }
  SUBCASE("members are exact names, empty entries never match") {
    const std::string group = "g1:x:1:,,\ng2:x:2:al,ice\ng3:x:3: alice\ng4:x:4:alice,\n";
    CHECK(resolve_user("alice", kPasswd, group).value().supplementary_gids == Gids{4});
  }
  SUBCASE("more supplementary groups than setgroups takes is an error") {
    std::string group;
    for (size_t i = 0; i <= kMaxSupplementaryGroups; ++i) group += "g:x:" + std::to_string(i + 1) + ":alice\n";
    auto user = resolve_user("alice", kPasswd, group);
    REQUIRE_FALSE(user.ok());
    CHECK(user.error().message.find("more than 65536 groups") != std::string::npos);
    // At the limit it is fine, and duplicates of a gid count once.
    group.resize(group.rfind("g:x:"));
    group += "g:x:1:alice\n";
    CHECK(resolve_user("alice", kPasswd, group).value().supplementary_gids.size() == kMaxSupplementaryGroups);
  }
}

// ---- resolve_user_in_root --------------------------------------------------------------

namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "hyper-users-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& path, const std::string& contents) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << contents;
}

UniqueFd open_dir(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  REQUIRE(fd.valid());
  return fd;
}

}  // namespace

TEST_CASE("users in root: reads <root>/etc/passwd and group") {
  TempDir temp;
  const fs::path root = temp.path() / "root";
  write_file(root / "etc/passwd", kPasswd);
  write_file(root / "etc/group", kGroup);
  const UniqueFd dir = open_dir(root);
  const ResolvedUser alice = resolve_user_in_root(dir.get(), "alice").value();
  CHECK(alice.uid == 1000);
  CHECK(alice.home == "/home/alice");
  CHECK(alice.supplementary_gids == Gids{10, 50});
  CHECK(resolve_user_in_root(dir.get(), "bob:users").value().gid == 100);
}

TEST_CASE("users in root: absent files") {
  TempDir temp;
  const fs::path root = temp.path() / "root";
  fs::create_directories(root);
  const UniqueFd dir = open_dir(root);
  CHECK(resolve_user_in_root(dir.get(), "").value().home == "/");
  CHECK(resolve_user_in_root(dir.get(), "1000").value().uid == 1000);
  auto alice = resolve_user_in_root(dir.get(), "alice");
  REQUIRE_FALSE(alice.ok());
  CHECK(alice.error().message.find("(the image has none)") != std::string::npos);
}

TEST_CASE("users in root: symlinks resolve inside the root, never to the host") {
  TempDir temp;
  const fs::path root = temp.path() / "root";
  fs::create_directories(root);
  // A decoy outside the root: reaching it would be an escape.
  write_file(temp.path() / "decoy/etc/passwd", "mallory:x:666:666::/decoy:/bin/sh\n");
  write_file(temp.path() / "decoy/etc/group", "evil:x:666:mallory\n");
  const UniqueFd dir = open_dir(root);

  SUBCASE("an absolute link to the decoy names <root>/<that path>, which does not exist") {
    fs::create_directory_symlink(temp.path() / "decoy/etc", root / "etc");
    auto mallory = resolve_user_in_root(dir.get(), "mallory");
    CHECK_FALSE(mallory.ok());
    if (!mallory.ok()) CHECK(mallory.error().message.find("(the image has none)") != std::string::npos);
    CHECK(resolve_user_in_root(dir.get(), "666").value().home == "/");
  }
  SUBCASE("a relative link climbing out stops at the root") {
    fs::create_directory_symlink("../decoy/etc", root / "etc");  // <temp>/decoy/etc from <root>
    CHECK_FALSE(resolve_user_in_root(dir.get(), "mallory").ok());
    CHECK(resolve_user_in_root(dir.get(), "666").value().name.empty());
  }
  SUBCASE("a file link to the host's /etc/passwd") {
    fs::create_directories(root / "etc");
    fs::create_symlink(temp.path() / "decoy/etc/passwd", root / "etc/passwd");
    CHECK_FALSE(resolve_user_in_root(dir.get(), "mallory").ok());
  }
  SUBCASE("etc -> /etc loops inside the root: an error, not the host's passwd") {
    fs::create_directory_symlink("/etc", root / "etc");
    auto user = resolve_user_in_root(dir.get(), "root");
    CHECK_FALSE(user.ok());
    if (user.ok()) MESSAGE("resolved to home " << user->home);
    REQUIRE_FALSE(user.ok());
    CHECK(user.error().message.find("opening /etc/passwd in the container's root filesystem: ") == 0);
    CHECK(user.error().message.find("symbolic links") != std::string::npos);
  }
  SUBCASE("links within the root are followed") {
    write_file(root / "usr/etc/passwd", "alice:x:1000:1000::/home/alice:/bin/sh\n");
    write_file(root / "usr/etc/group", "staff:x:50:alice\n");
    fs::create_directory_symlink("/usr/etc", root / "etc");
    const ResolvedUser alice = resolve_user_in_root(dir.get(), "alice").value();
    CHECK(alice.uid == 1000);
    CHECK(alice.supplementary_gids == Gids{50});
  }
}

TEST_CASE("users in root: only regular files up to 1 MiB") {
  TempDir temp;
  const fs::path root = temp.path() / "root";
  fs::create_directories(root / "etc");
  const UniqueFd dir = open_dir(root);

  SUBCASE("a FIFO is refused without blocking") {
    REQUIRE(::mkfifo((root / "etc/passwd").c_str(), 0600) == 0);
    auto user = resolve_user_in_root(dir.get(), "alice");
    REQUIRE_FALSE(user.ok());
    CHECK(user.error().message == "/etc/passwd in the container's root filesystem is not a regular file");
  }
  SUBCASE("a directory is refused") {
    fs::create_directories(root / "etc/group");
    write_file(root / "etc/passwd", kPasswd);
    auto user = resolve_user_in_root(dir.get(), "alice");
    REQUIRE_FALSE(user.ok());
    CHECK(user.error().message == "/etc/group in the container's root filesystem is not a regular file");
  }
  SUBCASE("1 MiB is fine, one byte more is not") {
    std::string passwd = "alice:x:1000:1000::/home/alice:/bin/sh\n";
    passwd.resize(kMaxUserFileSize, '#');
    write_file(root / "etc/passwd", passwd);
    CHECK(resolve_user_in_root(dir.get(), "alice").value().uid == 1000);
    write_file(root / "etc/passwd", passwd + "\n");
    auto user = resolve_user_in_root(dir.get(), "alice");
    REQUIRE_FALSE(user.ok());
    CHECK(user.error().message == "/etc/passwd in the container's root filesystem is larger than 1 MiB");
  }
}
