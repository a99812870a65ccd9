#include "runtime/oci/state_dir.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "runtime/image_blobs.hpp"
#include "runtime/json_record.hpp"
#include "runtime/oci/bundle.hpp"

namespace hyper::runtime::oci {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kRecordFile = "oci.json";

Json record_json(const Record& record) {
  return {{"id", record.id},           {"bundle", record.bundle},   {"container_id", record.container_id},
          {"created", record.created}, {"pid", record.pid},         {"pid_start_ticks", record.pid_start_ticks},
          {"annotations", record.annotations}};
}

}  // namespace

Result<StateDir> StateDir::open(const fs::path& root) {
  std::error_code ec;
  // Absolute: the VMM works from its container's directory, which is under it.
  const fs::path absolute = fs::absolute(root, ec).lexically_normal();
  if (!ec) fs::create_directories(absolute, ec);
  if (ec) return make_error(Errc::io, "create " + root.string() + ": " + ec.message());
  ::chmod(absolute.c_str(), 0700);
  return StateDir(absolute);
}

Status StateDir::create(const Record& record) const {
  if (::mkdir(dir(record.id).c_str(), 0700) != 0) {
    if (errno == EEXIST) return make_error(Errc::invalid_argument, "container with id " + record.id + " exists already");
    return Error::from_errno("create " + dir(record.id).string());
  }
  return save(record);
}

Status StateDir::save(const Record& record) const {
  // Whole or not at all: `state` may read it while `create` records the pid. A bundle
  // path that is not UTF-8 is kept with replacement characters, not refused by a throw.
  return blobs::replace_file(dir(record.id) / kRecordFile,
                             record_json(record).dump(2, ' ', false, Json::error_handler_t::replace) + "\n");
}

Result<Record> StateDir::load(const std::string& id) const {
  HYPER_CHECK(check_container_id(id));
  const fs::path path = dir(id) / kRecordFile;
  if (!fs::exists(path)) return make_error(Errc::not_found, "container " + id + " does not exist");
  const Json json = HYPER_TRY(read_json_record(path));
  const auto corrupt = [&] {
    return make_error(Errc::io, "the state of container " + id + " (" + (dir(id) / kRecordFile).string() + ") is corrupt");
  };
  if (!json.is_object() || !json.contains("container_id")) return corrupt();
  // The runtime writes this file itself, but a damaged one must be an error, not a throw.
  try {
    Record record;
    record.id = json.value("id", id);
    record.bundle = json.value("bundle", "");
    record.container_id = json.value("container_id", "");
    record.created = json.value("created", "");
    record.pid = json.value("pid", 0);
    record.pid_start_ticks = json.value("pid_start_ticks", uint64_t{0});
    record.annotations = json.value("annotations", Json::object());
    return record;
  } catch (const Json::exception&) {
    return corrupt();
  }
}

void StateDir::remove(const std::string& id) const {
  std::error_code ec;
  fs::remove_all(dir(id), ec);
}

Json state_json(const Record& record, const std::string& status) {
  Json state = {{"ociVersion", kSpecVersion}, {"id", record.id},          {"status", status},
                {"pid", status == "stopped" ? 0 : record.pid},            {"bundle", record.bundle},
                {"rootfs", ""},             {"created", record.created}, {"owner", ""}};
  if (!record.annotations.empty()) state["annotations"] = record.annotations;
  return state;
}

}  // namespace hyper::runtime::oci
