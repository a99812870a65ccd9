#include "runtime/oci/state_dir.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include "runtime/oci/bundle.hpp"
#include "vmm/file_io.hpp"

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
  fs::create_directories(root, ec);
  if (ec) return make_error(Errc::io, "create " + root.string() + ": " + ec.message());
  ::chmod(root.c_str(), 0700);
  return StateDir(root);
}

Status StateDir::create(const Record& record) const {
  if (::mkdir(dir(record.id).c_str(), 0700) != 0) {
    if (errno == EEXIST) return make_error(Errc::invalid_argument, "container with id " + record.id + " exists already");
    return Error::from_errno("create " + dir(record.id).string());
  }
  return save(record);
}

Status StateDir::save(const Record& record) const {
  const fs::path path = dir(record.id) / kRecordFile;
  const fs::path tmp = dir(record.id) / (std::string(kRecordFile) + ".tmp");
  const std::string text = record_json(record).dump(2) + "\n";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) return make_error(Errc::io, "write " + tmp.string());
  }
  // Whole or not at all: `state` may read it while `create` records the pid.
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Error::from_errno("rename " + tmp.string());
  return {};
}

Result<Record> StateDir::load(const std::string& id) const {
  HYPER_CHECK(check_container_id(id));
  std::ifstream in(dir(id) / kRecordFile);
  if (!in) return make_error(Errc::not_found, "container " + id + " does not exist");
  const Json json = Json::parse(in, nullptr, false);
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
