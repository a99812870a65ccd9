#include "guest-init/tar_reader.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/unit/tar_builder.hpp"

using namespace hyper;
using namespace hyper::tar;
using hyper::testing::pax_record;
using hyper::testing::RawHeader;
using hyper::testing::tar_data;
using hyper::testing::tar_end;
using hyper::testing::TarFormat;
using hyper::testing::TarSpec;
using hyper::testing::TarWriter;

namespace {

std::vector<Entry> read_all(ByteSource& source) {
  Reader reader(source);
  std::vector<Entry> entries;
  for (;;) {
    auto next = reader.next();
    INFO((next.ok() ? std::string() : next.error().message));
    REQUIRE(next.ok());
    if (!*next) break;
    entries.push_back(std::move(**next));
  }
  return entries;
}

std::vector<Entry> read_all(const std::string& archive) {
  MemorySource source(archive);
  return read_all(source);
}

// The first error reading the whole archive ("" if there is none).
std::string first_error(const std::string& archive, Errc* code = nullptr) {
  MemorySource source(archive);
  Reader reader(source);
  for (int i = 0; i < 1000; ++i) {
    auto next = reader.next();
    if (!next.ok()) {
      if (code != nullptr) *code = next.error().code;
      return next.error().message;
    }
    if (!*next) return "";
  }
  FAIL("the reader did not stop");
  return "";
}

std::string data_of(const std::string& archive, const Entry& entry) {
  MemorySource source(archive);
  std::string data(entry.size, '\0');
  REQUIRE(read_exact(source, entry.data_offset, data.data(), data.size()).ok());
  return data;
}

std::string pax_header(const std::string& records, const std::string& name = "PaxHeaders/x") {
  return RawHeader(name, 'x', records.size()).finish() + tar_data(records);
}

}  // namespace

TEST_CASE("tar reader: every entry type and its fields from a pax archive") {
  TarWriter w;
  w.add({.path = "bin/tool", .data = "#!/bin/sh\necho hi\n", .mode = 04755, .uid = 1000, .gid = 100, .mtime = 1234567890});
  w.add({.path = "etc/", .type = AE_IFDIR, .mode = 01777, .uid = 5, .gid = 6});
  w.symlink("lib", "usr/lib");
  w.hardlink("bin/tool2", "bin/tool");
  w.add({.path = "run/fifo", .type = AE_IFIFO, .mode = 0600});
  w.add({.path = "dev/null", .type = AE_IFCHR, .mode = 0666, .dev_major = 1, .dev_minor = 3});
  w.add({.path = "dev/sda1", .type = AE_IFBLK, .mode = 0660, .dev_major = 8, .dev_minor = 1});
  w.file("empty", "");
  const std::string archive = w.finish();
  const auto entries = read_all(archive);
  REQUIRE(entries.size() == 8);

  CHECK(entries[0].type == EntryType::regular);
  CHECK(entries[0].path == "bin/tool");
  CHECK(entries[0].mode == 04755);
  CHECK(entries[0].uid == 1000);
  CHECK(entries[0].gid == 100);
  CHECK(entries[0].mtime_sec == 1234567890);
  CHECK(entries[0].size == 18);
  CHECK(entries[0].header_offset == 0);
  CHECK(data_of(archive, entries[0]) == "#!/bin/sh\necho hi\n");

  CHECK(entries[1].type == EntryType::directory);
  CHECK(entries[1].path == "etc/");
  CHECK(entries[1].mode == 01777);
  CHECK(entries[1].uid == 5);
  CHECK(entries[1].gid == 6);
  CHECK(entries[2].type == EntryType::symlink);
  CHECK(entries[2].link_target == "usr/lib");
  CHECK(entries[3].type == EntryType::hard_link);
  CHECK(entries[3].path == "bin/tool2");
  CHECK(entries[3].link_target == "bin/tool");
  CHECK(entries[3].size == 0);
  CHECK(entries[4].type == EntryType::fifo);
  CHECK(entries[5].type == EntryType::char_device);
  CHECK(entries[5].dev_major == 1);
  CHECK(entries[5].dev_minor == 3);
  CHECK(entries[6].type == EntryType::block_device);
  CHECK(entries[6].dev_major == 8);
  CHECK(entries[6].dev_minor == 1);
  CHECK(entries[7].size == 0);
  // Headers follow one another at block boundaries.
  CHECK(entries[1].header_offset == 1024);
}

TEST_CASE("tar reader: pax paths longer than 100 bytes, xattrs and fractional mtime") {
  const std::string long_path = std::string(150, 'd') + "/" + std::string(200, 'f');
  const std::string long_target = "/" + std::string(300, 't');
  const std::string binary("\0=\n\xff value", 10);
  TarWriter w(TarFormat::pax);
  w.add({.path = long_path, .data = "x", .mtime = 1700000000, .mtime_nsec = 123456789,
         .xattrs = {{"user.plain", "v"}, {"user.binary", binary}, {"security.capability", std::string(20, '\x01')}}});
  w.symlink("link", long_target);
  const std::string archive = w.finish();
  const auto entries = read_all(archive);
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].path == long_path);
  CHECK(entries[0].mtime_sec == 1700000000);
  CHECK(entries[0].mtime_nsec == 123456789);
  REQUIRE(entries[0].xattrs.size() == 3);
  const auto value_of = [&](const std::string& name) {
    for (const Xattr& x : entries[0].xattrs) {
      if (x.name == name) return x.value;
    }
    return std::string("<none>");
  };
  CHECK(value_of("user.plain") == "v");
  CHECK(value_of("user.binary") == binary);
  CHECK(value_of("security.capability") == std::string(20, '\x01'));
  CHECK(data_of(archive, entries[0]) == "x");
  CHECK(entries[1].link_target == long_target);
}

TEST_CASE("tar reader: GNU long names and links, base-256 numbers") {
  const std::string long_path = "usr/share/" + std::string(300, 'n');
  TarWriter w(TarFormat::gnu);
  w.add({.path = long_path, .data = "gnu", .uid = 3000000, .gid = 4000000});  // too big for octal
  w.symlink(long_path + ".lnk", std::string(200, 'l'));
  const std::string archive = w.finish();
  // libarchive wrote them as GNU: 'L' and 'K' headers and base-256 ids.
  CHECK(archive[156] == 'L');
  const auto entries = read_all(archive);
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].path == long_path);
  CHECK(entries[0].uid == 3000000);
  CHECK(entries[0].gid == 4000000);
  CHECK(data_of(archive, entries[0]) == "gnu");
  CHECK(entries[1].path == long_path + ".lnk");
  CHECK(entries[1].link_target == std::string(200, 'l'));
}

TEST_CASE("tar reader: a base-256 size field") {
  const std::string archive =
      RawHeader("big", '0', 0).base256(124, 12, 5).finish() + tar_data("hello") + tar_end();
  const auto entries = read_all(archive);
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].size == 5);
  CHECK(data_of(archive, entries[0]) == "hello");
}

TEST_CASE("tar reader: ustar prefix, v7 directories, pax overrides") {
  SUBCASE("the ustar prefix joins the name") {
    const std::string dir = std::string(120, 'p');
    TarWriter w(TarFormat::ustar);
    w.file(dir + "/name", "u");
    const std::string archive = w.finish();
    CHECK(archive[345] == 'p');  // libarchive put the directory into the prefix field
    const auto entries = read_all(archive);
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].path == dir + "/name");
  }
  SUBCASE("an old '\\0' type with a trailing slash is a directory") {
    const auto entries = read_all(RawHeader("olddir/", '\0', 0).finish() + RawHeader("oldfile", '\0', 0).finish() + tar_end());
    REQUIRE(entries.size() == 2);
    CHECK(entries[0].type == EntryType::directory);
    CHECK(entries[1].type == EntryType::regular);
  }
  SUBCASE("pax records override the header, an empty value cancels") {
    const std::string records = pax_record("path", "from/pax") + pax_record("linkpath", "") + pax_record("uid", "70000") +
                                pax_record("gid", "80000") + pax_record("mtime", "-1.5") + pax_record("uname", "who") +
                                pax_record("size", "3") + pax_record("comment", "ignored");
    const std::string archive = pax_header(records) + RawHeader("header/name", '0', 99).finish() + tar_data("abc") + tar_end();
    const auto entries = read_all(archive);
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].path == "from/pax");
    CHECK(entries[0].uid == 70000);
    CHECK(entries[0].gid == 80000);
    CHECK(entries[0].mtime_sec == -2);
    CHECK(entries[0].mtime_nsec == 500000000);
    CHECK(entries[0].size == 3);  // the pax size, not the header's 99
    CHECK(data_of(archive, entries[0]) == "abc");
    CHECK(entries[0].header_offset == 0);
    CHECK(entries[0].data_offset == 1536);
  }
  SUBCASE("global headers are skipped; a repeated xattr keeps its last value") {
    const std::string global = pax_record("path", "not/this");
    const std::string records = pax_record("SCHILY.xattr.user.a", "1") + pax_record("SCHILY.xattr.user.a", "2");
    const auto entries = read_all(RawHeader("g", 'g', global.size()).finish() + tar_data(global) + pax_header(records) +
                                  RawHeader("f", '0', 0).finish() + tar_end());
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].path == "f");
    REQUIRE(entries[0].xattrs.size() == 1);
    CHECK(entries[0].xattrs[0].value == "2");
  }
}

TEST_CASE("tar reader: the end of the archive") {
  const std::string entry = RawHeader("f", '0', 0).finish();
  CHECK(first_error(entry + tar_end()) == "");
  CHECK(first_error(entry + tar_end() + "trailing garbage is never read") == "");
  CHECK(first_error(entry + std::string(512, '\0')) == "");  // the source ends after one zero block
  CHECK(first_error(entry).find("no end-of-archive marker") != std::string::npos);
  CHECK(first_error("").find("no end-of-archive marker") != std::string::npos);
  CHECK(first_error(entry + std::string(512, '\0') + entry).find("followed by data") != std::string::npos);
  CHECK(first_error(entry + std::string(700, '\0')) == "");  // a partial block after a zero block
}

TEST_CASE("tar reader: malformed archives are bad_image errors naming the entry and its offset") {
  const std::string good = RawHeader("good", '0', 3).finish() + tar_data("abc");
  Errc code = Errc::io;

  SUBCASE("bad checksum") {
    std::string bad = RawHeader("victim", '0', 0).finish();
    bad[0] = 'V';
    const std::string message = first_error(good + bad + tar_end(), &code);
    CHECK(code == Errc::bad_image);
    CHECK(message.find("checksum") != std::string::npos);
    CHECK(message.find("\"Victim\"") != std::string::npos);
    CHECK(message.find("offset 1024") != std::string::npos);
  }
  SUBCASE("size beyond the source") {
    const std::string message = first_error(RawHeader("huge", '0', 1u << 30).finish() + tar_data("abc") + tar_end(), &code);
    CHECK(code == Errc::bad_image);
    CHECK(message.find("\"huge\"") != std::string::npos);
    CHECK(message.find("past the end") != std::string::npos);
  }
  SUBCASE("data that ends without padding and end marker") {
    CHECK(first_error(RawHeader("cut", '0', 3).finish() + "abc").find("no end-of-archive marker") != std::string::npos);
  }
  SUBCASE("a negative base-256 size") {
    RawHeader h("neg", '0', 0);
    h.text(124, std::string(12, '\xff'));  // -1
    CHECK(first_error(h.finish() + tar_end(), &code).find("size -1 is out of range") != std::string::npos);
    CHECK(code == Errc::bad_image);
  }
  SUBCASE("a malformed octal field") {
    RawHeader h("mode", '0', 0);
    h.text(100, "07x4");
    CHECK(first_error(h.finish() + tar_end()).find("malformed mode field") != std::string::npos);
  }
  SUBCASE("pax record longer than its header") {
    const std::string records = "100 path=short\n";
    const std::string message = first_error(pax_header(records, "PaxHeaders/trunc") + good + tar_end(), &code);
    CHECK(code == Errc::bad_image);
    CHECK(message.find("PaxHeaders/trunc") != std::string::npos);
    CHECK(message.find("runs past") != std::string::npos);
  }
  SUBCASE("pax header data cut by the end of the source") {
    const std::string records = pax_record("path", std::string(600, 'a'));
    const std::string cut = RawHeader("PaxHeaders/cut", 'x', records.size()).finish() + records.substr(0, 100);
    CHECK(first_error(cut).find("past the end") != std::string::npos);
  }
  SUBCASE("malformed pax records") {
    for (const std::string& records : {std::string("x path=a\n"), std::string("5 path=a\n"), std::string("8 =abcd\n"),
                                       std::string("10 pathabc\n"), std::string("9 path=abX"), std::string("0 \n")}) {
      INFO(records);
      CHECK(first_error(pax_header(records) + good + tar_end(), &code).find("pax record") != std::string::npos);
      CHECK(code == Errc::bad_image);
    }
  }
  SUBCASE("a pax header over 1 MiB") {
    const std::string header = RawHeader("PaxHeaders/big", 'x', (1u << 20) + 1).finish();
    const std::string archive = header + std::string((1u << 20) + 1024, '\0') + tar_end();
    CHECK(first_error(archive).find("pax extended header of 1048577 bytes") != std::string::npos);
  }
  SUBCASE("over-long paths") {
    CHECK(first_error(pax_header(pax_record("path", std::string(4097, 'a'))) + good + tar_end())
              .find("longer than 4096") != std::string::npos);
    CHECK(first_error(pax_header(pax_record("linkpath", std::string(5000, 'a'))) + good + tar_end())
              .find("longer than 4096") != std::string::npos);
    const std::string name(4097, 'L');
    CHECK(first_error(RawHeader("././@LongLink", 'L', name.size()).finish() + tar_data(name) + good + tar_end())
              .find("longer than 4096") != std::string::npos);
    // Exactly 4096 is fine.
    const std::string fits(4096, 'a');
    const auto entries = read_all(pax_header(pax_record("path", fits)) + good + tar_end());
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].path == fits);
  }
  SUBCASE("a NUL in a pax path") {
    CHECK(first_error(pax_header(pax_record("path", std::string("a\0b", 3))) + good + tar_end()).find("NUL") !=
          std::string::npos);
  }
  SUBCASE("unknown and unsupported types") {
    for (char type : {'S', 'V', 'M', 'D', 'Z'}) {
      const std::string message = first_error(good + RawHeader("odd", type, 0).finish() + tar_end(), &code);
      CHECK(code == Errc::bad_image);
      CHECK(message.find("unsupported entry type \"" + std::string(1, type) + "\"") != std::string::npos);
      CHECK(message.find("\"odd\" at offset 1024") != std::string::npos);
    }
    CHECK(first_error(pax_header(pax_record("GNU.sparse.major", "1")) + good + tar_end()).find("sparse") !=
          std::string::npos);
  }
  SUBCASE("an extended header with no entry after it") {
    CHECK(first_error(pax_header(pax_record("path", "x")) + tar_end()).find("not followed by an entry") !=
          std::string::npos);
  }
  SUBCASE("xattr limits") {
    std::string records;
    for (int i = 0; i < 129; ++i) records += pax_record("SCHILY.xattr.user.n" + std::to_string(i), "v");
    CHECK(first_error(pax_header(records) + good + tar_end()).find("more than 128 extended attributes") !=
          std::string::npos);
    records.clear();
    for (int i = 0; i < 3; ++i) records += pax_record("SCHILY.xattr.user.big" + std::to_string(i), std::string(30000, 'v'));
    CHECK(first_error(pax_header(records) + good + tar_end()).find("larger than 65536") != std::string::npos);
    CHECK(first_error(pax_header(pax_record("SCHILY.xattr.", "v")) + good + tar_end()).find("attribute name") !=
          std::string::npos);
  }
  SUBCASE("device numbers out of range") {
    RawHeader h("dev", '3', 0);
    h.octal(329, 8, 5000);
    CHECK(first_error(h.finish() + tar_end()).find("device major 5000 is out of range") != std::string::npos);
  }
  SUBCASE("the reader stays failed") {
    std::string bad = RawHeader("x", '0', 0).finish();
    bad[0] = 'y';
    MemorySource source(bad + tar_end());
    Reader reader(source);
    CHECK_FALSE(reader.next().ok());
    CHECK_FALSE(reader.next().ok());
  }
}

TEST_CASE("tar reader: an fd source reads only its window of the file") {
  TarWriter first, second;
  first.file("first", "1");
  second.file("second", "22");
  const std::string a = first.finish(), b = second.finish();
  char name[] = "/tmp/hyper-tar-test-XXXXXX";
  const int fd = ::mkstemp(name);
  REQUIRE(fd >= 0);
  ::unlink(name);
  const std::string bytes = a + b + std::string(4096, 'G');
  REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));

  FdSource window(fd, a.size(), b.size());
  const auto entries = read_all(window);
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].path == "second");
  std::string data(2, '\0');
  REQUIRE(read_exact(window, entries[0].data_offset, data.data(), 2).ok());
  CHECK(data == "22");
  char c;
  CHECK(window.read_at(b.size(), &c, 1).value() == 0);  // nothing past the window
  CHECK(window.read_at(b.size() - 1, &c, 4).value() == 1);

  // A window cut inside the entry's header: truncated, not garbage from beyond it.
  FdSource cut(fd, a.size(), 300);
  Reader reader(cut);
  auto next = reader.next();
  REQUIRE_FALSE(next.ok());
  CHECK(next.error().code == Errc::bad_image);
  ::close(fd);
}

TEST_CASE("tar reader: printable names in messages") {
  CHECK(printable("a\"b\\c\n\x01") == "\"a\\x22b\\x5cc\\x0a\\x01\"");
  CHECK(printable(std::string(300, 'a')).size() == 200 + 5);
}
