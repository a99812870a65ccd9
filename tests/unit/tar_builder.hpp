// Tar archives built in memory for the tar reader and layer tests: well-formed ones with
// libarchive's writer, malformed ones from raw headers.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace hyper::testing {

struct TarSpec {
  std::string path{};
  unsigned type = AE_IFREG;  // AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFIFO, AE_IFCHR, AE_IFBLK
  std::string data{};        // regular files
  std::string link{};        // symlink target
  std::string hardlink{};    // set: a hard link to this path
  unsigned mode = 0644;
  int64_t uid = 0, gid = 0;
  int64_t mtime = 1700000000;
  long mtime_nsec = 0;
  unsigned dev_major = 0, dev_minor = 0;
  std::vector<std::pair<std::string, std::string>> xattrs{};
};

enum class TarFormat { pax_restricted, pax, gnu, ustar };

class TarWriter {
 public:
  explicit TarWriter(TarFormat format = TarFormat::pax_restricted) : archive_(archive_write_new()) {
    switch (format) {
      case TarFormat::pax_restricted: archive_write_set_format_pax_restricted(archive_); break;
      case TarFormat::pax: archive_write_set_format_pax(archive_); break;
      case TarFormat::gnu: archive_write_set_format_gnutar(archive_); break;
      case TarFormat::ustar: archive_write_set_format_ustar(archive_); break;
    }
    REQUIRE(archive_write_open2(archive_, &out_, nullptr, &TarWriter::append, nullptr, nullptr) == ARCHIVE_OK);
  }
  ~TarWriter() { archive_write_free(archive_); }
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  TarWriter& add(const TarSpec& spec) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, spec.path.c_str());
    archive_entry_set_filetype(entry, spec.hardlink.empty() ? spec.type : AE_IFREG);
    archive_entry_set_perm(entry, spec.mode);
    archive_entry_set_uid(entry, spec.uid);
    archive_entry_set_gid(entry, spec.gid);
    archive_entry_set_mtime(entry, spec.mtime, spec.mtime_nsec);
    if (!spec.link.empty()) archive_entry_set_symlink(entry, spec.link.c_str());
    if (!spec.hardlink.empty()) archive_entry_set_hardlink(entry, spec.hardlink.c_str());
    if (spec.type == AE_IFCHR || spec.type == AE_IFBLK) {
      archive_entry_set_rdevmajor(entry, spec.dev_major);
      archive_entry_set_rdevminor(entry, spec.dev_minor);
    }
    for (const auto& [name, value] : spec.xattrs) {
      archive_entry_xattr_add_entry(entry, name.c_str(), value.data(), value.size());
    }
    const bool has_data = spec.type == AE_IFREG && spec.hardlink.empty();
    archive_entry_set_size(entry, has_data ? static_cast<int64_t>(spec.data.size()) : 0);
    const int status = archive_write_header(archive_, entry);
    INFO(archive_error_string(archive_));
    REQUIRE(status == ARCHIVE_OK);
    if (has_data && !spec.data.empty()) {
      REQUIRE(archive_write_data(archive_, spec.data.data(), spec.data.size()) ==
              static_cast<la_ssize_t>(spec.data.size()));
    }
    archive_entry_free(entry);
    return *this;
  }

  TarWriter& file(const std::string& path, const std::string& data, unsigned mode = 0644) {
    return add({.path = path, .data = data, .mode = mode});
  }
  TarWriter& dir(const std::string& path, unsigned mode = 0755) {
    return add({.path = path, .type = AE_IFDIR, .mode = mode});
  }
  TarWriter& symlink(const std::string& path, const std::string& target) {
    return add({.path = path, .type = AE_IFLNK, .link = target, .mode = 0777});
  }
  TarWriter& hardlink(const std::string& path, const std::string& target) {
    return add({.path = path, .hardlink = target});
  }

  std::string finish() {
    REQUIRE(archive_write_close(archive_) == ARCHIVE_OK);
    return out_;
  }

 private:
  static la_ssize_t append(archive*, void* out, const void* data, size_t size) {
    static_cast<std::string*>(out)->append(static_cast<const char*>(data), size);
    return static_cast<la_ssize_t>(size);
  }

  archive* archive_;
  std::string out_;
};

// One 512-byte ustar header, written field by field; the checksum is computed last.
class RawHeader {
 public:
  RawHeader(const std::string& name, char type, uint64_t size) : block_(512, '\0') {
    text(0, name);
    octal(100, 8, 0644);
    octal(108, 8, 0);
    octal(116, 8, 0);
    octal(124, 12, size);
    octal(136, 12, 1700000000);
    block_[156] = type;
    text(257, std::string("ustar\0", 6));
    text(263, "00");
  }
  RawHeader& text(size_t offset, const std::string& value) {
    block_.replace(offset, value.size(), value);
    return *this;
  }
  RawHeader& octal(size_t offset, size_t length, uint64_t value) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%0*llo", static_cast<int>(length - 1), static_cast<unsigned long long>(value));
    block_.replace(offset, length, std::string(buf, length - 1) + '\0');
    return *this;
  }
  // GNU base-256: 0x80, then the value big-endian in the rest of the field.
  RawHeader& base256(size_t offset, size_t length, uint64_t value) {
    block_[offset] = static_cast<char>(0x80);
    for (size_t i = 1; i < length; ++i) {
      const size_t shift = 8 * (length - 1 - i);
      block_[offset + i] = shift < 64 ? static_cast<char>((value >> shift) & 0xff) : '\0';
    }
    return *this;
  }
  // The checksum over the header as it is now (the field itself counting as spaces).
  std::string finish() const {
    std::string block = block_;
    block.replace(148, 8, 8, ' ');
    unsigned sum = 0;
    for (char c : block) sum += static_cast<unsigned char>(c);
    char buf[16];
    std::snprintf(buf, sizeof buf, "%06o", sum);
    block.replace(148, 8, std::string(buf, 6) + '\0' + ' ');
    return block;
  }

 private:
  std::string block_;
};

// Data padded to whole blocks.
inline std::string tar_data(const std::string& data) {
  std::string out = data;
  out.resize((data.size() + 511) / 512 * 512, '\0');
  return out;
}

inline std::string tar_end() { return std::string(1024, '\0'); }

// A pax record "<len> key=value\n" with its self-inclusive length.
inline std::string pax_record(const std::string& key, const std::string& value) {
  const std::string body = " " + key + "=" + value + "\n";
  size_t length = body.size() + 1;
  while (std::to_string(length).size() + body.size() != length) ++length;
  return std::to_string(length) + body;
}

}  // namespace hyper::testing
