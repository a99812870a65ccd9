#include "guest-init/layer_apply.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/unit/tar_builder.hpp"
#include "vmm/unique_fd.hpp"

using namespace hyper;
using namespace hyper::layer;
using hyper::testing::pax_record;
using hyper::testing::RawHeader;
using hyper::testing::tar_data;
using hyper::testing::tar_end;
using hyper::testing::TarSpec;
using hyper::testing::TarWriter;

namespace {

bool is_root() { return ::geteuid() == 0; }

ApplyOptions test_options() {
  ApplyOptions options;
  options.preserve_ownership = is_root();
  return options;
}

// A temporary directory holding the root and, next to it, "outside": a layer that escaped
// the root would write there.
struct Rootfs {
  Rootfs() {
    char name[] = "/tmp/hyper-layer-test-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    base = name;
    root = base + "/root";
    outside = base + "/outside";
    REQUIRE(::mkdir(root.c_str(), 0755) == 0);
    REQUIRE(::mkdir(outside.c_str(), 0755) == 0);
    root_fd = UniqueFd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(root_fd.valid());
  }
  ~Rootfs() {
    std::error_code ignored;
    std::filesystem::remove_all(base, ignored);
  }

  Result<ApplyStats> apply(const std::string& archive, const ApplyOptions& options = test_options()) {
    tar::MemorySource source(archive);
    return apply_layer(root_fd.get(), source, options);
  }
  ApplyStats apply_ok(const std::string& archive, const ApplyOptions& options = test_options()) {
    auto result = apply(archive, options);
    INFO((result.ok() ? std::string() : result.error().message));
    REQUIRE(result.ok());
    return *result;
  }
  std::string apply_error(const std::string& archive, Errc* code = nullptr) {
    auto result = apply(archive);
    REQUIRE_FALSE(result.ok());
    if (code != nullptr) *code = result.error().code;
    return result.error().message;
  }

  std::string at(const std::string& path) const { return root + "/" + path; }
  bool exists(const std::string& path) const {
    struct stat st;
    return ::lstat(at(path).c_str(), &st) == 0;
  }
  struct stat stat_of(const std::string& path) const {
    struct stat st {};
    REQUIRE(::lstat(at(path).c_str(), &st) == 0);
    return st;
  }
  std::string read(const std::string& path) const { return read_host(at(path)); }
  static std::string read_host(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    std::stringstream data;
    data << in.rdbuf();
    return data.str();
  }
  static std::vector<std::string> list_host(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) names.push_back(entry.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }
  std::vector<std::string> list(const std::string& path) const { return list_host(at(path)); }
  std::string xattr(const std::string& path, const char* name) const {
    char value[256];
    const ssize_t n = ::lgetxattr(at(path).c_str(), name, value, sizeof value);
    return n < 0 ? std::string("<none>") : std::string(value, static_cast<size_t>(n));
  }

  std::string base, root, outside;
  UniqueFd root_fd;
};

using Names = std::vector<std::string>;

}  // namespace

TEST_CASE("layer: normalised paths") {
  CHECK(normalise_path("a/b") == "a/b");
  CHECK(normalise_path("/a//b/") == "a/b");
  CHECK(normalise_path("./a/./b/.") == "a/b");
  CHECK(normalise_path(".") == "");
  CHECK(normalise_path("./") == "");
  CHECK(normalise_path("") == "");
  CHECK(normalise_path("///") == "");
  CHECK(normalise_path("..") == std::nullopt);
  CHECK(normalise_path("../x") == std::nullopt);
  CHECK(normalise_path("a/../b") == std::nullopt);
  CHECK(normalise_path("a/..") == std::nullopt);
  CHECK(normalise_path("a/..b/c..") == "a/..b/c..");
}

TEST_CASE("layer: files, directories, links, fifos with their metadata") {
  Rootfs fs;
  const std::string big(300 * 1024 + 7, 'B');  // more than one copy chunk
  TarWriter w;
  w.add({.path = "./etc/", .type = AE_IFDIR, .mode = 0750, .uid = 11, .gid = 12, .mtime = 1000000000,
         .xattrs = {{"user.dir", "d"}}});
  w.add({.path = "etc/passwd", .data = "root:x:0:0\n", .mode = 0640, .uid = 1234, .gid = 5678,
         .mtime = 1600000000, .mtime_nsec = 987654321, .xattrs = {{"user.test", "value"}}});
  w.add({.path = "/usr/bin/su", .data = "suid", .mode = 04755, .uid = 1000, .gid = 1000});
  w.add({.path = "usr/bin/wall", .data = "sgid", .mode = 02711, .gid = 5});
  w.add({.path = "tmp/", .type = AE_IFDIR, .mode = 01777});
  w.add({.path = "data/big", .data = big, .mode = 0600});
  w.add({.path = "lib", .type = AE_IFLNK, .link = "usr/lib", .mode = 0777, .uid = 7, .gid = 8, .mtime = 1500000000,
         .xattrs = {{"user.link", "refused by the kernel on symlinks, skipped"}}});
  w.hardlink("usr/bin/su2", "usr/bin/su");
  w.add({.path = "run/fifo", .type = AE_IFIFO, .mode = 0620, .mtime = 1400000000});
  const ApplyStats stats = fs.apply_ok(w.finish());

  CHECK(stats.entries == 9);
  CHECK(stats.regular_files == 4);
  CHECK(stats.bytes_written == 11 + 4 + 4 + big.size());
  CHECK(stats.directories == 2);
  CHECK(stats.symlinks == 1);
  CHECK(stats.hard_links == 1);
  CHECK(stats.special_files == 1);
  CHECK(stats.skipped == 0);

  const struct stat passwd = fs.stat_of("etc/passwd");  // before reading it changes atime
  CHECK(fs.read("etc/passwd") == "root:x:0:0\n");
  CHECK(fs.read("data/big") == big);
  CHECK((passwd.st_mode & 07777) == 0640);
  CHECK(passwd.st_mtim.tv_sec == 1600000000);
  CHECK(passwd.st_mtim.tv_nsec == 987654321);
  CHECK(passwd.st_atim.tv_sec == 1600000000);
  CHECK(fs.xattr("etc/passwd", "user.test") == "value");
  CHECK(fs.xattr("etc", "user.dir") == "d");

  // The directory's time survives the file written into it afterwards.
  const struct stat etc = fs.stat_of("etc");
  CHECK(S_ISDIR(etc.st_mode));
  CHECK((etc.st_mode & 07777) == 0750);
  CHECK(etc.st_mtim.tv_sec == 1000000000);
  CHECK((fs.stat_of("tmp").st_mode & 07777) == 01777);
  // Parents the archive did not list are made 0755.
  CHECK((fs.stat_of("usr").st_mode & 07777) == 0755);
  CHECK((fs.stat_of("usr/bin").st_mode & 07777) == 0755);

  const struct stat su = fs.stat_of("usr/bin/su");
  CHECK((su.st_mode & 07777) == 04755);  // setuid survives the chown before it
  CHECK((fs.stat_of("usr/bin/wall").st_mode & 07777) == 02711);
  CHECK(su.st_nlink == 2);
  CHECK(fs.stat_of("usr/bin/su2").st_ino == su.st_ino);

  const struct stat lib = fs.stat_of("lib");
  CHECK(S_ISLNK(lib.st_mode));
  CHECK(std::filesystem::read_symlink(fs.at("lib")) == "usr/lib");
  CHECK(lib.st_mtim.tv_sec == 1500000000);

  const struct stat fifo = fs.stat_of("run/fifo");
  CHECK(S_ISFIFO(fifo.st_mode));
  CHECK((fifo.st_mode & 07777) == 0620);
  CHECK(fifo.st_mtim.tv_sec == 1400000000);

  if (is_root()) {
    CHECK(passwd.st_uid == 1234);
    CHECK(passwd.st_gid == 5678);
    CHECK(etc.st_uid == 11);
    CHECK(etc.st_gid == 12);
    CHECK(su.st_uid == 1000);
    CHECK(lib.st_uid == 7);
    CHECK(lib.st_gid == 8);
    CHECK(fs.stat_of("usr").st_uid == 0);
  }
}

TEST_CASE("layer: privileged xattrs are set as root and skipped otherwise") {
  Rootfs fs;
  TarWriter w;
  w.add({.path = "f", .data = "x", .xattrs = {{"trusted.hyper", "t"}, {"user.a", "u"}}});
  fs.apply_ok(w.finish());
  CHECK(fs.xattr("f", "user.a") == "u");
  CHECK(fs.xattr("f", "trusted.hyper") == (is_root() ? "t" : "<none>"));
}

TEST_CASE("layer: the root entry updates the root; other types cannot replace it") {
  Rootfs fs;
  TarWriter w;
  w.add({.path = "./", .type = AE_IFDIR, .mode = 0711, .mtime = 1111111111});
  w.file("x", "1");
  fs.apply_ok(w.finish());
  const struct stat root = fs.stat_of(".");
  CHECK((root.st_mode & 07777) == 0711);
  CHECK(root.st_mtim.tv_sec == 1111111111);

  TarWriter bad;
  bad.file("./", "not a directory");
  Errc code = Errc::io;
  CHECK(fs.apply_error(bad.finish(), &code).find("cannot replace the root directory") != std::string::npos);
  CHECK(code == Errc::bad_image);
}

TEST_CASE("layer: a second layer replaces, whites out and makes directories opaque") {
  Rootfs fs;
  TarWriter lower;
  lower.file("a/file1", "old").file("a/file2", "stays").file("b/keep", "k").file("b/gone", "g");
  lower.file("c/old", "o").file("c/sub/deep", "d").file("d", "file d").file("e/x", "x");
  lower.dir("dirfile").file("dirfile/inner", "i");
  lower.file("filedir", "f");
  lower.symlink("linkdir", "c");
  fs.apply_ok(lower.finish());

  const std::string upper_archive = [&] {
    TarWriter u;
    u.file("a/file1", "new");
    u.file("b/.wh.gone", "");
    u.file(".wh.d", "");
    u.file("e/.wh.nothing-there", "");
    u.dir("c/");
    u.file("c/.wh..wh..opq", "");
    u.file("c/new", "n");
    u.file("dirfile", "now a file");
    u.dir("filedir/");
    u.file("filedir/inside", "now a directory");
    return u.finish();
  }();
  const ApplyStats stats = fs.apply_ok(upper_archive);
  CHECK(stats.whiteouts == 4);

  CHECK(fs.read("a/file1") == "new");
  CHECK(fs.read("a/file2") == "stays");
  CHECK(fs.list("b") == Names{"keep"});
  CHECK_FALSE(fs.exists("d"));
  CHECK(fs.list("e") == Names{"x"});
  CHECK(fs.list("c") == Names{"new"});
  CHECK(S_ISREG(fs.stat_of("dirfile").st_mode));
  CHECK(fs.read("dirfile") == "now a file");
  CHECK(fs.read("filedir/inside") == "now a directory");
  // No whiteout file is ever created.
  CHECK_FALSE(fs.exists("c/.wh..wh..opq"));
  CHECK_FALSE(fs.exists("b/.wh.gone"));
}

TEST_CASE("layer: whiteouts keep what the same layer wrote, in any order") {
  Rootfs fs;
  TarWriter lower;
  lower.file("c/old", "o").file("c/sub/lower", "l").file("c/sub2/lower", "l").file("top", "t");
  fs.apply_ok(lower.finish());

  TarWriter upper;
  upper.file("c/new", "n");              // before the opaque whiteout
  upper.file("c/sub/upper", "u");        // c/sub comes from the lower layer, its file from this one
  upper.file("c/.wh..wh..opq", "");
  upper.file("c/later", "l");            // after it
  upper.file("x", "x");
  upper.file(".wh.x", "");               // x is this layer's own: stays
  upper.file(".wh.top", "");
  fs.apply_ok(upper.finish());

  CHECK(fs.list("c") == Names{"later", "new", "sub"});
  CHECK(fs.list("c/sub") == Names{"upper"});  // the lower file under a kept directory goes
  CHECK(fs.read("x") == "x");
  CHECK_FALSE(fs.exists("top"));
}

TEST_CASE("layer: an opaque whiteout at the root and whiteout names that are errors") {
  Rootfs fs;
  TarWriter lower;
  lower.file("a", "a").file("b/c", "c");
  fs.apply_ok(lower.finish());
  TarWriter upper;
  upper.file("b/d", "d").file(".wh..wh..opq", "");
  fs.apply_ok(upper.finish());
  CHECK(fs.list(".") == Names{"b"});
  CHECK(fs.list("b") == Names{"d"});

  for (const char* name : {".wh.", ".wh..", "b/.wh..", "b/.wh..."}) {
    TarWriter bad;
    bad.file(name, "");
    Errc code = Errc::io;
    CHECK(fs.apply_error(bad.finish(), &code).find("whiteout of") != std::string::npos);
    CHECK(code == Errc::bad_image);
  }
}

TEST_CASE("layer: \"..\" anywhere fails the layer and writes nothing outside") {
  for (const std::string& path : {std::string("../x"), std::string("a/../../x"), std::string("a/../b"),
                                  std::string("/../outside/x"), std::string("./../outside/x")}) {
    INFO(path);
    Rootfs fs;
    const std::string archive =
        RawHeader(path, '0', 3).finish() + tar_data("bad") + tar_end();  // libarchive would clean the name
    Errc code = Errc::io;
    const std::string message = fs.apply_error(archive, &code);
    CHECK(code == Errc::bad_image);
    CHECK(message.find("leaves the root") != std::string::npos);
    CHECK(message.find(path) != std::string::npos);
    CHECK(Rootfs::list_host(fs.outside).empty());
    CHECK(Rootfs::list_host(fs.base) == Names{"outside", "root"});
  }
}

TEST_CASE("layer: symlinked parents resolve inside the root, absolute or relative") {
  Rootfs fs;
  const std::string host_outside = fs.outside;              // e.g. /tmp/hyper-layer-test-X/outside
  const std::string outside_in_root = host_outside.substr(1);  // the same path inside the root
  TarWriter w;
  w.dir("outside/");
  w.symlink("escape", "../outside");
  w.file("escape/f1", "1");
  w.dir(outside_in_root + "/");
  w.symlink("abs", host_outside);
  w.file("abs/f2", "2");
  w.symlink("evil", "/");
  w.file("evil/" + outside_in_root + "/f3", "3");
  w.symlink("up", "../../../../../../../../../..");
  w.file("up/" + outside_in_root + "/f4", "4");
  w.symlink("back", "escape/../outside");  // ".." after a symlink: from where it points
  w.file("back/f5", "5");
  fs.apply_ok(w.finish());

  CHECK(Rootfs::list_host(fs.outside).empty());
  CHECK(fs.list("outside") == Names{"f1", "f5"});
  CHECK(fs.list(outside_in_root) == Names{"f2", "f3", "f4"});
}

TEST_CASE("layer: a symlink at the final component is replaced, never followed") {
  Rootfs fs;
  REQUIRE(::mkdir((fs.outside + "/victim-dir").c_str(), 0755) == 0);
  {
    std::ofstream(fs.outside + "/victim-abs") << "host";
    std::ofstream(fs.outside + "/victim-rel") << "host";
  }
  TarWriter lower;
  lower.symlink("abs", fs.outside + "/victim-abs");
  lower.symlink("rel", "../outside/victim-rel");
  lower.symlink("dir", fs.outside + "/victim-dir");
  lower.symlink("hard", fs.outside + "/victim-abs");
  fs.apply_ok(lower.finish());

  TarWriter upper;
  upper.add({.path = "abs", .data = "layer", .mode = 0600});
  upper.file("rel", "layer");
  upper.dir("dir/", 0700);
  upper.file("target", "t");
  upper.hardlink("hard", "target");
  fs.apply_ok(upper.finish());

  CHECK(Rootfs::read_host(fs.outside + "/victim-abs") == "host");
  CHECK(Rootfs::read_host(fs.outside + "/victim-rel") == "host");
  struct stat victim_dir;
  REQUIRE(::stat((fs.outside + "/victim-dir").c_str(), &victim_dir) == 0);
  CHECK((victim_dir.st_mode & 07777) == 0755);
  CHECK(S_ISREG(fs.stat_of("abs").st_mode));
  CHECK(fs.read("abs") == "layer");
  CHECK(fs.read("rel") == "layer");
  CHECK(S_ISDIR(fs.stat_of("dir").st_mode));
  CHECK(fs.stat_of("hard").st_ino == fs.stat_of("target").st_ino);
}

TEST_CASE("layer: hard links stay inside the root") {
  Rootfs fs;
  { std::ofstream(fs.outside + "/secret") << "host secret"; }

  SUBCASE("a target with \"..\" is refused") {
    TarWriter w;
    w.hardlink("stolen", "../../outside/secret");
    Errc code = Errc::io;
    const std::string message = fs.apply_error(w.finish(), &code);
    CHECK(code == Errc::bad_image);
    CHECK(message.find("\"stolen\"") != std::string::npos);
    CHECK(message.find("leaves the root") != std::string::npos);
    CHECK_FALSE(fs.exists("stolen"));
  }
  SUBCASE("a target through a symlink that points up resolves in the root") {
    TarWriter w;
    w.dir("outside/").file("outside/secret", "inner");
    w.symlink("esc", "../../outside");
    w.hardlink("stolen", "esc/secret");
    w.hardlink("esc/newlink", "outside/secret");  // the link's own parent through the symlink
    w.symlink("abs", fs.outside);
    w.hardlink("stolen2", "abs/secret");          // root/<base>/outside/secret does not exist
    const auto result = fs.apply(w.finish());
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().message.find("\"stolen2\"") != std::string::npos);
    CHECK(result.error().message.find("does not exist") != std::string::npos);
    CHECK(fs.read("stolen") == "inner");
    CHECK(fs.stat_of("outside/newlink").st_ino == fs.stat_of("outside/secret").st_ino);
    CHECK(fs.stat_of("outside/secret").st_nlink == 3);
    struct stat host;
    REQUIRE(::stat((fs.outside + "/secret").c_str(), &host) == 0);
    CHECK(host.st_nlink == 1);
    CHECK(Rootfs::list_host(fs.outside) == Names{"secret"});
  }
  SUBCASE("targets that are missing or directories") {
    TarWriter w;
    w.dir("d/");
    w.hardlink("to-dir", "d");
    CHECK(fs.apply_error(w.finish()).find("is a directory") != std::string::npos);
    TarWriter m;
    m.hardlink("to-nothing", "nothing/here");
    CHECK(fs.apply_error(m.finish()).find("does not exist") != std::string::npos);
  }
  SUBCASE("a link to itself or to the file it already is changes nothing") {
    TarWriter w;
    w.file("f", "data").hardlink("g", "f").hardlink("g", "f").hardlink("f", "f");
    fs.apply_ok(w.finish());
    CHECK(fs.stat_of("f").st_nlink == 2);
    CHECK(fs.read("g") == "data");
  }
}

TEST_CASE("layer: devices are skipped when they may not be created") {
  const auto archive = [] {
    TarWriter w;
    w.add({.path = "dev/null", .type = AE_IFCHR, .mode = 0666, .dev_major = 1, .dev_minor = 3});
    w.add({.path = "dev/loop9", .type = AE_IFBLK, .mode = 0660, .dev_major = 7, .dev_minor = 9});
    w.add({.path = "dev/fifo", .type = AE_IFIFO, .mode = 0644});
    return w.finish();
  }();
  SUBCASE("create_devices = false") {
    Rootfs fs;
    ApplyOptions options = test_options();
    options.create_devices = false;
    const ApplyStats stats = fs.apply_ok(archive, options);
    CHECK(stats.skipped == 2);
    CHECK(stats.special_files == 1);
    CHECK(fs.list("dev") == Names{"fifo"});
  }
  SUBCASE("create_devices = true") {
    Rootfs fs;
    const ApplyStats stats = fs.apply_ok(archive);
    if (is_root()) {
      CHECK(stats.special_files == 3);
      const struct stat null = fs.stat_of("dev/null");
      CHECK(S_ISCHR(null.st_mode));
      CHECK(major(null.st_rdev) == 1);
      CHECK(minor(null.st_rdev) == 3);
      CHECK((null.st_mode & 07777) == 0666);
      CHECK(S_ISBLK(fs.stat_of("dev/loop9").st_mode));
    } else {
      CHECK(stats.skipped == 2);  // EPERM from mknod
    }
  }
}

TEST_CASE("layer: errors name the entry and the failed call") {
  Rootfs fs;
  TarWriter w;
  w.file("a", "file").file("a/b", "under a file");
  const std::string message = fs.apply_error(w.finish());
  CHECK(message.find("\"a/b\"") != std::string::npos);
  CHECK(message.find("Not a directory") != std::string::npos);

  // A malformed archive fails the layer with the reader's error.
  std::string bad = RawHeader("x", '0', 0).finish();
  bad[0] = 'y';
  Errc code = Errc::io;
  CHECK(fs.apply_error(bad + tar_end(), &code).find("checksum") != std::string::npos);
  CHECK(code == Errc::bad_image);
}

TEST_CASE("layer: directory times are applied last, to what is still a directory") {
  Rootfs fs;
  TarWriter w;
  w.add({.path = "d/", .type = AE_IFDIR, .mode = 0755, .mtime = 1000});
  w.file("d/f", "x");
  w.add({.path = "e/", .type = AE_IFDIR, .mode = 0755, .mtime = 2000});
  w.add({.path = "e", .data = "now a file", .mtime = 3000});
  w.file("d/.wh.f", "");  // this layer's own file: stays, d's time too
  fs.apply_ok(w.finish());
  CHECK(fs.stat_of("d").st_mtim.tv_sec == 1000);
  CHECK(fs.stat_of("e").st_mtim.tv_sec == 3000);
}
