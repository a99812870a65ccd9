// The small JSON records the stores keep (networks, leases, volumes, snapshots): read whole,
// and a record that is not what it should be reported as corrupt with its path, since
// only a person can tell what happened to it.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

#include "runtime/image_blobs.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime {

inline constexpr uint64_t kMaxRecordBytes = 1 << 20;

inline Error corrupt_record(const std::filesystem::path& path, const std::string& why) {
  return make_error(Errc::io, path.string() + " is corrupt (" + why + "); remove it by hand");
}

// The record at `path`, which must be one JSON object.
inline Result<nlohmann::json> read_json_record(const std::filesystem::path& path) {
  const std::string text = HYPER_TRY(blobs::read_small_file(path, kMaxRecordBytes));
  nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  if (!json.is_object()) return corrupt_record(path, "not a JSON object");
  return json;
}

}  // namespace hyper::runtime
