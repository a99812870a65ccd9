// LayerBlobWriter (runtime/image_commit.hpp): libarchive's gzip filter over its "raw"
// format, which writes a single entry's bytes as they are.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>

#include <memory>

#include "runtime/image_blobs.hpp"
#include "runtime/image_commit.hpp"
#include "vmm/file_io.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime {
namespace {

struct ArchiveFree {
  void operator()(archive* a) const { archive_write_free(a); }
};

std::string archive_message(archive* a) {
  const char* message = archive_error_string(a);
  return message != nullptr ? message : "unknown libarchive error";
}

}  // namespace

struct LayerBlobWriter::State {
  std::filesystem::path path;
  UniqueFd fd;
  blobs::Sha256 plain, compressed;
  uint64_t plain_size = 0, compressed_size = 0;
  Status failure;  // of the output callback, which can only tell libarchive "-1"
  // Declared last, so it is freed (and flushed) while the fd is still open.
  std::unique_ptr<archive, ArchiveFree> writer;

  static la_ssize_t output(archive*, void* self, const void* data, size_t size) {
    auto* state = static_cast<State*>(self);
    const Status written = write_all(state->fd.get(), data, size, state->path.string());
    if (!written.ok()) {
      state->failure = written;
      return -1;
    }
    state->compressed.update(data, size);
    state->compressed_size += size;
    return static_cast<la_ssize_t>(size);
  }

  Error failed(const std::string& what) {
    if (!failure.ok()) return failure.error();
    return make_error(Errc::io, what + " " + path.string() + ": " + archive_message(writer.get()));
  }
};

LayerBlobWriter::LayerBlobWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}
LayerBlobWriter::LayerBlobWriter(LayerBlobWriter&&) noexcept = default;
LayerBlobWriter::~LayerBlobWriter() = default;

Result<LayerBlobWriter> LayerBlobWriter::create(const std::filesystem::path& dir) {
  const auto name = HYPER_TRY(blobs::random_hex(8));
  auto plain = HYPER_TRY(blobs::Sha256::create());
  auto compressed = HYPER_TRY(blobs::Sha256::create());
  auto state = std::unique_ptr<State>(new State{dir / ("layer-" + name + ".tar.gz"), UniqueFd(), std::move(plain),
                                                std::move(compressed), 0, 0, {}, nullptr});
  state->fd = UniqueFd(::open(state->path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!state->fd.valid()) return Error::from_errno("create " + state->path.string());
  state->writer.reset(archive_write_new());
  archive* a = state->writer.get();
  if (a == nullptr) return make_error(Errc::io, "out of memory for libarchive");
  if (archive_write_add_filter_gzip(a) != ARCHIVE_OK || archive_write_set_format_raw(a) != ARCHIVE_OK)
    return make_error(Errc::unsupported, "libarchive cannot write gzip: " + archive_message(a));
  // No time in the gzip header: the same layer always compresses to the same blob.
  (void)archive_write_set_filter_option(a, "gzip", "timestamp", nullptr);
  // A block size of one byte: no padding after the gzip stream.
  archive_write_set_bytes_in_last_block(a, 1);
  if (archive_write_open2(a, state.get(), nullptr, &State::output, nullptr, nullptr) != ARCHIVE_OK)
    return state->failed("open");
  std::unique_ptr<archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(), &archive_entry_free);
  if (!entry) return make_error(Errc::io, "out of memory for libarchive");
  archive_entry_set_filetype(entry.get(), AE_IFREG);
  if (archive_write_header(a, entry.get()) != ARCHIVE_OK) return state->failed("start");
  return LayerBlobWriter(std::move(state));
}

Status LayerBlobWriter::write(const void* data, size_t size) {
  if (!state_->writer) return make_error(Errc::invalid_argument, "the layer was already finished");
  state_->plain.update(data, size);
  state_->plain_size += size;
  const auto* bytes = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const la_ssize_t n = archive_write_data(state_->writer.get(), bytes, size);
    if (n <= 0) return state_->failed("write");
    bytes += n;
    size -= static_cast<size_t>(n);
  }
  return {};
}

uint64_t LayerBlobWriter::plain_size() const { return state_->plain_size; }

Result<LayerBlob> LayerBlobWriter::finish() {
  if (!state_->writer) return make_error(Errc::invalid_argument, "the layer was already finished");
  if (archive_write_close(state_->writer.get()) != ARCHIVE_OK) return state_->failed("finish");
  state_->writer.reset();
  LayerBlob blob;
  blob.path = state_->path;
  blob.digest = HYPER_TRY(state_->compressed.finish());
  blob.diff_id = HYPER_TRY(state_->plain.finish());
  blob.size = state_->compressed_size;
  state_->fd.reset();
  return blob;
}

}  // namespace hyper::runtime
