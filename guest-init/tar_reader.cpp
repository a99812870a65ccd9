#include "guest-init/tar_reader.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

namespace hyper::tar {
namespace {

// The ustar header: offsets and lengths of its fields.
struct Field {
  size_t offset, length;
};
constexpr Field kName{0, 100}, kMode{100, 8}, kUid{108, 8}, kGid{116, 8}, kSize{124, 12},
    kMtime{136, 12}, kChecksum{148, 8}, kLinkName{157, 100}, kMagic{257, 6}, kVersion{263, 2},
    kDevMajor{329, 8}, kDevMinor{337, 8}, kPrefix{345, 155};
constexpr size_t kTypeFlag = 156;

// Linux dev_t as the kernel stores it: 12 bits of major, 20 of minor.
constexpr uint32_t kMaxMajor = (1u << 12) - 1, kMaxMinor = (1u << 20) - 1;

using Block = char[kBlockSize];

std::string_view raw_field(const Block& block, Field f) { return {block + f.offset, f.length}; }

// A text field ends at its first NUL or fills the field.
std::string_view text_field(const Block& block, Field f) {
  const std::string_view raw = raw_field(block, f);
  return raw.substr(0, std::min(raw.find('\0'), raw.size()));
}

bool is_zero_block(const Block& block) {
  return std::all_of(block, block + kBlockSize, [](char c) { return c == 0; });
}

// Octal (leading and trailing spaces or NULs allowed) or GNU base-256 (high bit of the
// first byte set; two's complement in the rest). nullopt for anything else or overflow.
std::optional<int64_t> parse_number(std::string_view field) {
  if (!field.empty() && (static_cast<uint8_t>(field[0]) & 0x80) != 0) {
    const uint8_t invert = (static_cast<uint8_t>(field[0]) & 0x40) != 0 ? 0xff : 0x00;
    uint64_t value = 0;
    for (size_t i = 0; i < field.size(); ++i) {
      uint8_t byte = static_cast<uint8_t>(field[i]) ^ invert;
      if (i == 0) byte &= 0x7f;
      if ((value >> 55) != 0) return std::nullopt;
      value = (value << 8) | byte;
    }
    if ((value >> 63) != 0) return std::nullopt;
    // -a - 1 == ~a: the inverted bits of a negative number are its magnitude minus one.
    return invert != 0 ? -static_cast<int64_t>(value) - 1 : static_cast<int64_t>(value);
  }
  size_t i = 0;
  while (i < field.size() && (field[i] == ' ' || field[i] == '\0')) ++i;
  int64_t value = 0;
  for (; i < field.size() && field[i] >= '0' && field[i] <= '7'; ++i) {
    if (value > (INT64_MAX >> 3)) return std::nullopt;
    value = value * 8 + (field[i] - '0');
  }
  for (; i < field.size(); ++i) {
    if (field[i] != ' ' && field[i] != '\0') return std::nullopt;
  }
  return value;
}

std::optional<uint64_t> parse_decimal(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

struct Timestamp {
  int64_t sec = 0;
  uint32_t nsec = 0;
};

// pax time: [-]seconds[.fraction]; digits of the fraction past nanoseconds are dropped.
std::optional<Timestamp> parse_pax_time(std::string_view text) {
  const bool negative = !text.empty() && text[0] == '-';
  if (negative) text.remove_prefix(1);
  const size_t dot = std::min(text.find('.'), text.size());
  const auto whole = parse_decimal(text.substr(0, dot));
  if (!whole || *whole > static_cast<uint64_t>(INT64_MAX) - 1) return std::nullopt;
  uint32_t nsec = 0;
  if (dot < text.size()) {
    const std::string_view fraction = text.substr(dot + 1);
    uint32_t scale = 100000000;
    for (char c : fraction) {
      if (c < '0' || c > '9') return std::nullopt;
      nsec += static_cast<uint32_t>(c - '0') * scale;
      scale /= 10;
    }
  }
  Timestamp t{static_cast<int64_t>(*whole), nsec};
  if (negative) {
    t.sec = -t.sec;
    if (t.nsec != 0) {
      t.sec -= 1;
      t.nsec = 1000000000 - t.nsec;
    }
  }
  return t;
}

bool checksum_ok(const Block& block) {
  const auto stored = parse_number(raw_field(block, kChecksum));
  if (!stored || *stored < 0) return false;
  // The checksum field counts as spaces. Old writers summed signed chars: accept both.
  int64_t unsigned_sum = 0, signed_sum = 0;
  for (size_t i = 0; i < kBlockSize; ++i) {
    const bool in_field = i >= kChecksum.offset && i < kChecksum.offset + kChecksum.length;
    const char c = in_field ? ' ' : block[i];
    unsigned_sum += static_cast<uint8_t>(c);
    signed_sum += static_cast<signed char>(c);
  }
  return *stored == unsigned_sum || *stored == signed_sum;
}

uint64_t padded(uint64_t size) { return (size + kBlockSize - 1) / kBlockSize * kBlockSize; }

const char* unsupported_type_name(char flag) {
  switch (flag) {
    case 'S': return " (GNU sparse file)";
    case 'V': return " (GNU volume label)";
    case 'M': return " (GNU multi-volume continuation)";
    case 'D': return " (GNU dump directory)";
    case 'N': return " (old GNU long name)";
    case 'X': return " (Solaris extended header)";
    default: return "";
  }
}

// What extended headers ('x', 'L', 'K') say about the entry that follows them.
struct Overrides {
  bool any = false;
  std::optional<std::string> path, link;
  std::optional<uint64_t> size;
  std::optional<uint32_t> uid, gid;
  std::optional<Timestamp> mtime;
  std::vector<Xattr> xattrs;
  size_t xattr_bytes = 0;
};

// Errors name the entry (its header's name field) and the offset of its header.
struct Where {
  std::string_view name;
  uint64_t offset;
  Error error(const std::string& why) const {
    return make_error(Errc::bad_image, "tar entry " + printable(name) + " at offset " +
                                           std::to_string(offset) + ": " + why);
  }
};

Status check_path(std::string_view value, const char* what, const Where& where) {
  if (value.size() > kMaxPath) {
    return where.error(std::string(what) + " is longer than " + std::to_string(kMaxPath) + " bytes");
  }
  if (value.find('\0') != std::string_view::npos) return where.error(std::string(what) + " contains a NUL byte");
  return {};
}

Status add_xattr(Overrides& out, std::string_view name, std::string_view value, const Where& where) {
  if (name.empty() || name.size() > kMaxXattrName || name.find('\0') != std::string_view::npos) {
    return where.error("bad extended attribute name " + printable(name));
  }
  auto same = std::find_if(out.xattrs.begin(), out.xattrs.end(), [&](const Xattr& x) { return x.name == name; });
  if (same != out.xattrs.end()) {
    out.xattr_bytes -= same->name.size() + same->value.size();
    out.xattrs.erase(same);
  }
  if (out.xattrs.size() >= kMaxXattrs) {
    return where.error("more than " + std::to_string(kMaxXattrs) + " extended attributes");
  }
  if (name.size() + value.size() > kMaxXattrBytes - out.xattr_bytes) {
    return where.error("extended attributes larger than " + std::to_string(kMaxXattrBytes) + " bytes");
  }
  out.xattr_bytes += name.size() + value.size();
  out.xattrs.push_back(Xattr{std::string(name), std::string(value)});
  return {};
}

Status apply_pax_record(Overrides& out, std::string_view key, std::string_view value, const Where& where) {
  constexpr std::string_view kXattrPrefix = "SCHILY.xattr.";
  if (key == "path" || key == "linkpath") {
    HYPER_CHECK(check_path(value, key == "path" ? "pax path" : "pax linkpath", where));
    auto& slot = key == "path" ? out.path : out.link;
    // An empty value cancels the override: the header's own field applies again.
    slot = value.empty() ? std::nullopt : std::optional<std::string>(value);
  } else if (key == "size" || key == "uid" || key == "gid") {
    if (value.empty()) return {};
    const auto number = parse_decimal(value);
    if (!number) return where.error("bad pax " + std::string(key) + " " + printable(value));
    if (key == "size") {
      out.size = *number;
    } else {
      if (*number > UINT32_MAX) return where.error("pax " + std::string(key) + " " + std::string(value) + " is too large");
      (key == "uid" ? out.uid : out.gid) = static_cast<uint32_t>(*number);
    }
  } else if (key == "mtime") {
    if (value.empty()) return {};
    const auto time = parse_pax_time(value);
    if (!time) return where.error("bad pax mtime " + printable(value));
    out.mtime = time;
  } else if (key.starts_with(kXattrPrefix)) {
    HYPER_CHECK(add_xattr(out, key.substr(kXattrPrefix.size()), value, where));
  } else if (key.starts_with("GNU.sparse.")) {
    return where.error("sparse files are not supported");
  }
  // Everything else (uname, gname, atime, ctime, comment, charset, LIBARCHIVE.*, ...) is
  // of no use for a root filesystem.
  return {};
}

// Records are "<length> <key>=<value>\n", the length counting the whole record.
Status parse_pax(std::string_view data, Overrides& out, const Where& where) {
  size_t pos = 0;
  while (pos < data.size()) {
    const std::string_view rest = data.substr(pos);
    size_t digits = 0, length = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9' && digits < 8) {
      length = length * 10 + static_cast<size_t>(rest[digits] - '0');
      ++digits;
    }
    if (digits == 0 || digits >= rest.size() || rest[digits] != ' ') {
      return where.error("malformed pax record at byte " + std::to_string(pos) + " of the extended header");
    }
    if (length > rest.size()) {
      return where.error("pax record at byte " + std::to_string(pos) + " runs past the end of the extended header");
    }
    if (length < digits + 3 || rest[length - 1] != '\n') {
      return where.error("malformed pax record at byte " + std::to_string(pos) + " of the extended header");
    }
    const std::string_view record = rest.substr(digits + 1, length - digits - 2);
    const size_t equals = record.find('=');
    if (equals == 0 || equals == std::string_view::npos) {
      return where.error("pax record without a key at byte " + std::to_string(pos) + " of the extended header");
    }
    HYPER_CHECK(apply_pax_record(out, record.substr(0, equals), record.substr(equals + 1), where));
    pos += length;
  }
  return {};
}

std::optional<EntryType> entry_type(char flag) {
  switch (flag) {
    case '0': case '\0': case '7': return EntryType::regular;
    case '1': return EntryType::hard_link;
    case '2': return EntryType::symlink;
    case '3': return EntryType::char_device;
    case '4': return EntryType::block_device;
    case '5': return EntryType::directory;
    case '6': return EntryType::fifo;
    default: return std::nullopt;
  }
}

// A header field as a number in [min, max].
Result<int64_t> number_field(const Block& block, Field f, const char* what, int64_t min, int64_t max,
                             const Where& where) {
  const auto value = parse_number(raw_field(block, f));
  if (!value) return where.error(std::string("malformed ") + what + " field");
  if (*value < min || *value > max) return where.error(std::string(what) + " " + std::to_string(*value) + " is out of range");
  return *value;
}

}  // namespace

Result<size_t> FdSource::read_at(uint64_t offset, void* buf, size_t len) {
  if (offset >= size_) return size_t{0};
  len = static_cast<size_t>(std::min<uint64_t>(len, size_ - offset));
  if (base_ > static_cast<uint64_t>(INT64_MAX) || offset + len > static_cast<uint64_t>(INT64_MAX) - base_) {
    return make_error(Errc::invalid_argument, "layer offset " + std::to_string(base_ + offset) + " is too large");
  }
  size_t done = 0;
  while (done < len) {
    const ssize_t n = ::pread(fd_, static_cast<char*>(buf) + done, len - done,
                              static_cast<off_t>(base_ + offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("reading the layer at offset " + std::to_string(offset + done));
    if (n == 0) break;  // the device is shorter than the layer was said to be
    done += static_cast<size_t>(n);
  }
  return done;
}

Result<size_t> MemorySource::read_at(uint64_t offset, void* buf, size_t len) {
  if (offset >= bytes_.size()) return size_t{0};
  const size_t n = static_cast<size_t>(std::min<uint64_t>(len, bytes_.size() - offset));
  std::memcpy(buf, bytes_.data() + offset, n);
  return n;
}

Status read_exact(ByteSource& source, uint64_t offset, void* buf, size_t len) {
  const size_t n = HYPER_TRY(source.read_at(offset, buf, len));
  if (n != len) {
    return make_error(Errc::bad_image, "tar archive truncated: " + std::to_string(len) + " bytes at offset " +
                                           std::to_string(offset) + " are past the end of the layer");
  }
  return {};
}

const char* entry_type_name(EntryType type) {
  switch (type) {
    case EntryType::regular: return "regular file";
    case EntryType::hard_link: return "hard link";
    case EntryType::symlink: return "symbolic link";
    case EntryType::char_device: return "character device";
    case EntryType::block_device: return "block device";
    case EntryType::directory: return "directory";
    case EntryType::fifo: return "fifo";
  }
  return "unknown";
}

std::string printable(std::string_view text) {
  constexpr size_t kMaxShown = 200;
  std::string out = "\"";
  for (size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<uint8_t>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  out += text.size() > kMaxShown ? "\"..." : "\"";
  return out;
}

Result<std::optional<Entry>> Reader::next() {
  if (failed_) return make_error(Errc::bad_image, "tar archive: reading on after an error");
  if (done_) return std::optional<Entry>{};
  // Keeps every offset computed from the source's size far from overflowing.
  if (source_.size() > static_cast<uint64_t>(INT64_MAX)) {
    failed_ = true;
    return make_error(Errc::invalid_argument, "tar archive of " + std::to_string(source_.size()) + " bytes is too large");
  }
  auto entry = read_entry();
  if (!entry.ok()) failed_ = true;
  return entry;
}

// The archive ends with two zero blocks; the second may be missing where the source ends.
Status Reader::check_end_of_archive(uint64_t zero_block) {
  const uint64_t after = zero_block + kBlockSize;
  if (source_.size() - after < kBlockSize) return {};
  Block block;
  HYPER_CHECK(read_exact(source_, after, block, kBlockSize));
  if (!is_zero_block(block)) {
    return make_error(Errc::bad_image, "tar archive: a zero block at offset " + std::to_string(zero_block) +
                                           " is followed by data (a single zero block is not an end of archive)");
  }
  return {};
}

Result<std::optional<Entry>> Reader::read_entry() {
  Overrides overrides;
  const uint64_t first_header = offset_;
  Block block;
  for (;;) {
    const uint64_t at = offset_;
    if (at > source_.size() || source_.size() - at < kBlockSize) {
      return make_error(Errc::bad_image, "tar archive truncated at offset " + std::to_string(at) +
                                             ": no end-of-archive marker");
    }
    HYPER_CHECK(read_exact(source_, at, block, kBlockSize));
    if (is_zero_block(block)) {
      if (overrides.any) {
        return make_error(Errc::bad_image, "tar archive: the extended header at offset " +
                                               std::to_string(first_header) + " is not followed by an entry");
      }
      HYPER_CHECK(check_end_of_archive(at));
      done_ = true;
      return std::optional<Entry>{};
    }
    const Where where{text_field(block, kName), at};
    if (!checksum_ok(block)) return where.error("header checksum mismatch");

    const uint64_t data_offset = at + kBlockSize;
    const uint64_t header_size = static_cast<uint64_t>(
        HYPER_TRY(number_field(block, kSize, "size", 0, INT64_MAX, where)));
    // Extended headers are not bounded by the size override they may carry.
    const uint64_t size = overrides.size.value_or(header_size);
    const char flag = block[kTypeFlag];
    const bool meta = flag == 'x' || flag == 'g' || flag == 'L' || flag == 'K';
    const uint64_t data_size = meta ? header_size : size;
    if (data_size > source_.size() - data_offset) {
      return where.error("size " + std::to_string(data_size) + " goes past the end of the layer (" +
                         std::to_string(source_.size()) + " bytes)");
    }

    if (flag == 'x') {
      if (data_size > kMaxPaxHeader) {
        return where.error("pax extended header of " + std::to_string(data_size) + " bytes (the limit is " +
                           std::to_string(kMaxPaxHeader) + ")");
      }
      std::string data(static_cast<size_t>(data_size), '\0');
      HYPER_CHECK(read_exact(source_, data_offset, data.data(), data.size()));
      HYPER_CHECK(parse_pax(data, overrides, where));
      overrides.any = true;
      offset_ = data_offset + padded(data_size);
      continue;
    }
    if (flag == 'g') {
      offset_ = data_offset + padded(data_size);
      continue;
    }
    if (flag == 'L' || flag == 'K') {
      if (data_size > kMaxPath + 1) return where.error("GNU long name is longer than " + std::to_string(kMaxPath) + " bytes");
      std::string name(static_cast<size_t>(data_size), '\0');
      HYPER_CHECK(read_exact(source_, data_offset, name.data(), name.size()));
      name.resize(std::min(name.find('\0'), name.size()));
      HYPER_CHECK(check_path(name, "GNU long name", where));
      (flag == 'L' ? overrides.path : overrides.link) = std::move(name);
      overrides.any = true;
      offset_ = data_offset + padded(data_size);
      continue;
    }

    const auto type = entry_type(flag);
    if (!type) {
      return where.error(std::string("unsupported entry type ") + printable(std::string_view(&flag, 1)) +
                         unsupported_type_name(flag));
    }
    Entry entry;
    entry.type = *type;
    entry.header_offset = first_header;
    if (overrides.path) {
      entry.path = std::move(*overrides.path);
    } else {
      entry.path = text_field(block, kName);
      // Only POSIX ustar has a prefix; GNU keeps other fields there.
      const bool posix = raw_field(block, kMagic) == std::string_view("ustar\0", 6) &&
                         raw_field(block, kVersion) == "00";
      const std::string_view prefix = text_field(block, kPrefix);
      if (posix && !prefix.empty()) entry.path = std::string(prefix) + "/" + entry.path;
    }
    entry.link_target = overrides.link ? std::move(*overrides.link) : std::string(text_field(block, kLinkName));
    if (flag == '\0' && entry.path.ends_with('/')) entry.type = EntryType::directory;

    entry.mode = static_cast<uint32_t>(HYPER_TRY(number_field(block, kMode, "mode", 0, INT64_MAX, where)) & 07777);
    entry.uid = overrides.uid ? *overrides.uid
                              : static_cast<uint32_t>(HYPER_TRY(number_field(block, kUid, "uid", 0, UINT32_MAX, where)));
    entry.gid = overrides.gid ? *overrides.gid
                              : static_cast<uint32_t>(HYPER_TRY(number_field(block, kGid, "gid", 0, UINT32_MAX, where)));
    if (overrides.mtime) {
      entry.mtime_sec = overrides.mtime->sec;
      entry.mtime_nsec = overrides.mtime->nsec;
    } else {
      entry.mtime_sec = HYPER_TRY(number_field(block, kMtime, "mtime", INT64_MIN, INT64_MAX, where));
    }
    if (entry.type == EntryType::char_device || entry.type == EntryType::block_device) {
      entry.dev_major = static_cast<uint32_t>(HYPER_TRY(number_field(block, kDevMajor, "device major", 0, kMaxMajor, where)));
      entry.dev_minor = static_cast<uint32_t>(HYPER_TRY(number_field(block, kDevMinor, "device minor", 0, kMaxMinor, where)));
    }
    entry.xattrs = std::move(overrides.xattrs);
    entry.data_offset = data_offset;
    entry.size = entry.type == EntryType::regular ? size : 0;
    offset_ = data_offset + padded(entry.size);
    return std::optional<Entry>(std::move(entry));
  }
}

}  // namespace hyper::tar
