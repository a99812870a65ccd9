// What the commit, import and save tests share: a scratch directory with an image store,
// docker-archives built in memory, and tar archives read back into a map.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/image_blobs.hpp"
#include "runtime/image_store.hpp"
#include "tests/unit/tar_builder.hpp"

namespace hyper::testing {

namespace fs = std::filesystem;
using Json = nlohmann::json;

class ImageScratch {
 public:
  ImageScratch() {
    char name[] = "/tmp/hyper-image-test-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path_ = name;
  }
  ~ImageScratch() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ImageScratch(const ImageScratch&) = delete;
  ImageScratch& operator=(const ImageScratch&) = delete;
  [[nodiscard]] const fs::path& path() const { return path_; }

  // A fresh image store under this directory.
  runtime::ImageStore store(const std::string& name = "images") const {
    auto opened = runtime::ImageStore::open(path_ / name);
    REQUIRE(opened.ok());
    return std::move(opened).value();
  }

 private:
  fs::path path_;
};

inline std::string sha(const std::string& bytes) {
  auto digest = runtime::blobs::sha256_of(bytes);
  REQUIRE(digest.ok());
  return *digest;
}

inline std::string hex_of(const std::string& digest) { return digest.substr(digest.find(':') + 1); }

inline void write_file(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  REQUIRE(out.good());
}

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A docker-archive of one image: "<hex>/layer.tar" files, "<hex>.json", manifest.json.
inline std::string docker_archive(const std::vector<std::string>& layers, const std::string& config,
                                  const std::vector<std::string>& tags) {
  TarWriter writer;
  Json names = Json::array();
  for (const auto& layer : layers) {
    writer.file(hex_of(sha(layer)) + "/layer.tar", layer);
    names.push_back(hex_of(sha(layer)) + "/layer.tar");
  }
  writer.file(hex_of(sha(config)) + ".json", config);
  writer.file("manifest.json",
              Json::array({{{"Config", hex_of(sha(config)) + ".json"}, {"RepoTags", tags}, {"Layers", names}}}).dump());
  return writer.finish();
}

// An image config for `layers` (uncompressed) with some fields the store does not parse.
inline std::string image_config(const std::vector<std::string>& layers) {
  Json diff_ids = Json::array();
  for (const auto& layer : layers) diff_ids.push_back(sha(layer));
  return Json{{"architecture", "amd64"},
              {"os", "linux"},
              {"created", "2024-01-01T00:00:00Z"},
              {"author", "base author"},
              {"variant", "custom-field-kept"},
              {"config",
               {{"Env", {"PATH=/usr/bin:/bin", "KEEP=1"}},
                {"Cmd", {"sh"}},
                {"Labels", {{"base", "yes"}}},
                {"Healthcheck", {{"Test", {"NONE"}}}}}},
              {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}},
              {"history", Json::array({{{"created", "2024-01-01T00:00:00Z"}, {"created_by", "base layer"}}})}}
      .dump();
}

// One small layer: a directory and a file.
inline std::string small_layer(const std::string& name, const std::string& content) {
  TarWriter writer;
  writer.dir("etc/");
  writer.file("etc/" + name, content);
  return writer.finish();
}

// Every regular file of a tar (maybe compressed), by name.
inline std::map<std::string, std::string> tar_files(const std::string& bytes) {
  archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  REQUIRE(archive_read_open_memory(a, bytes.data(), bytes.size()) == ARCHIVE_OK);
  std::map<std::string, std::string> files;
  archive_entry* entry = nullptr;
  while (archive_read_next_header(a, &entry) == ARCHIVE_OK) {
    if (archive_entry_filetype(entry) != AE_IFREG) {
      files[archive_entry_pathname(entry)] = "<not a file>";
      continue;
    }
    std::string data(static_cast<size_t>(archive_entry_size(entry)), '\0');
    if (!data.empty()) REQUIRE(archive_read_data(a, data.data(), data.size()) == static_cast<la_ssize_t>(data.size()));
    files[archive_entry_pathname(entry)] = data;
  }
  archive_read_free(a);
  return files;
}

// `data` through one of libarchive's compression filters.
inline std::string compress(const std::string& data, int filter) {
  archive* a = archive_write_new();
  REQUIRE(archive_write_add_filter(a, filter) == ARCHIVE_OK);
  REQUIRE(archive_write_set_format_raw(a) == ARCHIVE_OK);
  REQUIRE(archive_write_set_bytes_in_last_block(a, 1) == ARCHIVE_OK);
  std::string out;
  REQUIRE(archive_write_open2(
              a, &out, nullptr,
              [](archive*, void* sink, const void* buffer, size_t size) -> la_ssize_t {
                static_cast<std::string*>(sink)->append(static_cast<const char*>(buffer), size);
                return static_cast<la_ssize_t>(size);
              },
              nullptr, nullptr) == ARCHIVE_OK);
  archive_entry* entry = archive_entry_new();
  archive_entry_set_filetype(entry, AE_IFREG);
  REQUIRE(archive_write_header(a, entry) == ARCHIVE_OK);
  REQUIRE(archive_write_data(a, data.data(), data.size()) == static_cast<la_ssize_t>(data.size()));
  archive_entry_free(entry);
  REQUIRE(archive_write_close(a) == ARCHIVE_OK);
  archive_write_free(a);
  return out;
}

// The uncompressed content of a stored layer blob.
inline std::string plain_blob(const runtime::ImageStore& store, const runtime::LayerRef& layer) {
  const auto compression = runtime::blobs::compression_of(layer.media_type);
  REQUIRE(compression.ok());
  std::string out;
  REQUIRE(runtime::blobs::for_each_plain_chunk(store.blob_path(layer.digest), compression.value(),
                                               [&](const uint8_t* data, size_t size) {
                                                 out.append(reinterpret_cast<const char*>(data), size);
                                                 return Status{};
                                               })
              .ok());
  return out;
}

}  // namespace hyper::testing
