#include "runtime/log_file.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <nlohmann/json.hpp>

#include "runtime/container_store.hpp"
#include "vmm/file_io.hpp"

namespace hyper::runtime {
namespace {

using Json = nlohmann::json;

// Encoded a slice at a time, since EVP_EncodeBlock counts in int; a multiple of 3 bytes
// per slice keeps the concatenation a single valid encoding.
constexpr size_t kBase64Slice = 3 * 16384;

std::string base64_encode(std::string_view bytes) {
  std::string out;
  for (size_t at = 0; at < bytes.size(); at += kBase64Slice) {
    const size_t size = std::min(kBase64Slice, bytes.size() - at);
    std::string encoded(4 * ((size + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data() + at), static_cast<int>(size));
    out.append(encoded.data(), static_cast<size_t>(n));
  }
  return out;
}

std::optional<std::string> base64_decode(const std::string& text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  constexpr size_t kSlice = 4 * 16384;
  for (size_t at = 0; at < text.size(); at += kSlice) {
    const size_t size = std::min(kSlice, text.size() - at);
    std::string decoded(3 * (size / 4), '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                                  reinterpret_cast<const unsigned char*>(text.data() + at), static_cast<int>(size));
    if (n < 0) return std::nullopt;
    // EVP_DecodeBlock counts the padding as decoded zero bytes.
    size_t length = static_cast<size_t>(n);
    for (size_t i = at + size; i > at && text[i - 1] == '='; --i) --length;
    out.append(decoded.data(), length);
  }
  return out;
}

std::string record_line(Stream stream, std::string_view bytes) {
  Json record = {{"stream", stream == Stream::err ? "stderr" : "stdout"},
                 {"time", now_rfc3339()},
                 {"log", std::string(bytes)}};
  // The container writes bytes, not text: nlohmann refuses to emit what is not UTF-8,
  // and then the exact bytes are kept as base64 rather than replaced.
  try {
    return record.dump() + "\n";
  } catch (const Json::exception&) {
    record["log"] = base64_encode(bytes);
    record["b64"] = true;
    return record.dump() + "\n";
  }
}

// A line that is not a record (a torn write after a full disk) is skipped, so the rest
// of the log stays readable.
std::optional<LogRecord> parse_record(std::string_view line) {
  const Json json = Json::parse(line, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return std::nullopt;
  const auto stream = json.find("stream"), time = json.find("time"), log = json.find("log");
  if (log == json.end() || !log->is_string()) return std::nullopt;
  LogRecord record;
  record.stream = stream != json.end() && *stream == "stderr" ? Stream::err : Stream::out;
  if (time != json.end() && time->is_string()) record.time = time->get<std::string>();
  record.bytes = log->get<std::string>();
  const auto b64 = json.find("b64");
  if (b64 != json.end() && *b64 == true) {
    auto decoded = base64_decode(record.bytes);
    if (!decoded) return std::nullopt;
    record.bytes = std::move(*decoded);
  }
  return record;
}

}  // namespace

Result<LogWriter> LogWriter::open(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd.valid()) return Error::from_errno("open " + path.string());
  return LogWriter(std::move(fd));
}

// One write(2) per record: with O_APPEND a reader never sees two records interleaved,
// only (at worst) the last one still incomplete.
Status LogWriter::write(Stream stream, std::string_view bytes) {
  const std::string line = record_line(stream, bytes);
  return write_all(fd_.get(), line.data(), line.size(), "the container log");
}

// Records go to the kernel as they are written; nothing is buffered here. Like Docker's
// json-file driver, the log is not fsync'd: a host crash may lose its tail.
Status LogWriter::flush() { return {}; }

Result<uint64_t> read_log(const std::filesystem::path& path, uint64_t offset,
                          const std::function<void(const LogRecord&)>& sink) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return offset;  // the container has not run yet: no records
    return Error::from_errno("open " + path.string());
  }
  uint64_t consumed = offset, position = offset;
  std::string pending;  // bytes after the last whole line
  size_t scanned = 0;   // how much of `pending` holds no newline
  char buf[65536];
  for (;;) {
    const ssize_t n = ::pread(fd.get(), buf, sizeof buf, static_cast<off_t>(position));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("read " + path.string());
    if (n == 0) return consumed;
    position += static_cast<uint64_t>(n);
    pending.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t newline; (newline = pending.find('\n', std::max(start, scanned))) != std::string::npos;
         start = newline + 1) {
      if (auto record = parse_record(std::string_view(pending).substr(start, newline - start))) sink(*record);
    }
    consumed += start;
    pending.erase(0, start);
    scanned = pending.size();
  }
}

std::pair<size_t, size_t> tail_start(const std::vector<LogRecord>& records, uint64_t lines) {
  if (lines == 0) return {records.size(), 0};
  bool ends_with_newline = false;
  for (size_t r = records.size(); r-- > 0;) {
    if (records[r].bytes.empty()) continue;
    ends_with_newline = records[r].bytes.back() == '\n';
    break;
  }
  // The newline that ends the line before the first one shown.
  uint64_t newlines = lines + (ends_with_newline ? 1 : 0);
  for (size_t r = records.size(); r-- > 0;) {
    const std::string& bytes = records[r].bytes;
    for (size_t b = bytes.size(); b-- > 0;) {
      if (bytes[b] == '\n' && --newlines == 0) return {r, b + 1};
    }
  }
  return {0, 0};
}

Result<std::optional<uint64_t>> parse_tail(const std::string& text) {
  if (text == "all") return std::optional<uint64_t>();
  char* end = nullptr;
  errno = 0;
  const long long lines = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0)
    return make_error(Errc::invalid_argument, "invalid value \"" + text + "\" for --tail: a number of lines or \"all\"");
  if (lines < 0) return std::optional<uint64_t>();  // Docker: a negative count shows everything
  return std::optional<uint64_t>(static_cast<uint64_t>(lines));
}

}  // namespace hyper::runtime
