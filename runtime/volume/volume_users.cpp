#include "runtime/volume/volume_users.hpp"

#include "runtime/agent_client.hpp"

namespace hyper::runtime::volume {
namespace {

constexpr int kFreezeTimeoutMs = 30'000;

bool mounts_volume(const Container& container, const std::string& volume, bool writable_only) {
  for (const auto& mount : container.config.mounts)
    if (mount.type == MountType::volume && mount.source == volume && !(writable_only && mount.read_only)) return true;
  return false;
}

std::string short_ids(const std::vector<Container>& containers) {
  std::string text;
  for (const auto& container : containers) text += (text.empty() ? "" : ", ") + container.id.substr(0, 12);
  return text;
}

// Holds a running container's file system frozen (FIFREEZE in the guest) while it lives.
// The agent thaws it on its own if this connection goes away, so a killed `hyper` never
// leaves a container hanging on a frozen disk.
class FrozenMount {
 public:
  static Result<FrozenMount> freeze(const Container& container, const std::string& target) {
    AgentConnection agent = HYPER_TRY(AgentConnection::dial(container.dir));
    HYPER_CHECK(agent.request({{"op", "freeze"}, {"target", target}, {"frozen", true}}, kFreezeTimeoutMs));
    return FrozenMount(std::move(agent), target);
  }
  Status thaw() {
    HYPER_CHECK(agent_.request({{"op", "freeze"}, {"target", target_}, {"frozen", false}}, kFreezeTimeoutMs));
    return {};
  }

 private:
  FrozenMount(AgentConnection agent, std::string target) : agent_(std::move(agent)), target_(std::move(target)) {}
  AgentConnection agent_;
  std::string target_;
};

std::string writer_target(const Container& container, const std::string& volume) {
  for (const auto& mount : container.config.mounts)
    if (mount.type == MountType::volume && mount.source == volume && !mount.read_only) return mount.target;
  return {};
}

}  // namespace

std::vector<Container> containers_using(const std::vector<Container>& containers, const std::string& volume) {
  std::vector<Container> users;
  for (const auto& container : containers)
    if (mounts_volume(container, volume, false)) users.push_back(container);
  return users;
}

Status ensure_volumes(const VolumeStore& store, std::vector<Mount>& mounts) {
  for (auto& mount : mounts) {
    if (mount.type != MountType::volume) continue;
    // A volume that exists is used as it is, whatever its driver (docker run -v NAME:/p).
    if (!mount.source.empty() && store.find(mount.source).ok()) continue;
    VolumeRequest request;
    if (mount.anonymous && mount.source.empty()) request.anonymous = true;
    else request.name = mount.source;
    const Volume volume = HYPER_TRY(store.create_locked(request));
    mount.source = volume.name;
  }
  return {};
}

Status remove_volume(const VolumeStore& store, const ContainerStore& containers, const Volume& volume) {
  auto held = HYPER_TRY(store.lock());
  const auto users = containers_using(HYPER_TRY(containers.list()), volume.name);
  if (!users.empty())
    return make_error(Errc::invalid_argument,
                      "remove " + volume.name + ": volume is in use - [" + short_ids(users) + "]");
  return store.remove_locked(volume);
}

void remove_anonymous_volumes(const VolumeStore& store, const ContainerStore& containers, const Container& container) {
  for (const auto& mount : container.config.mounts) {
    if (mount.type != MountType::volume || !mount.anonymous) continue;
    auto volume = store.find(mount.source);
    if (!volume.ok()) continue;
    auto held = store.lock();
    if (!held.ok()) continue;
    auto all = containers.list();
    if (!all.ok()) continue;
    std::vector<Container> others;
    for (const auto& user : containers_using(*all, mount.source))
      if (user.id != container.id) others.push_back(user);
    if (others.empty()) (void)store.remove_locked(*volume);
  }
}

Result<Snapshot> take_snapshot(const VolumeStore& store, const ContainerStore& containers, const Volume& volume,
                               const std::optional<std::string>& name) {
  auto held = HYPER_TRY(store.lock());
  // No container holds it at all, or only readers: nothing changes the disk during the copy.
  if (auto idle = HYPER_TRY(FileLock::try_acquire(volume.use_lock()))) return store.snapshot_locked(volume, name);
  if (auto readers = HYPER_TRY(FileLock::try_acquire_shared(volume.use_lock())))
    return store.snapshot_locked(volume, name);
  std::vector<Container> writers;
  for (auto& container : HYPER_TRY(containers.list()))
    if (container.state.status == ContainerStatus::running && mounts_volume(container, volume.name, true))
      writers.push_back(std::move(container));
  if (writers.size() != 1)
    return make_error(Errc::invalid_argument, "volume " + volume.name + " is being written by a container that " +
                                                  "is starting or stopping; try again in a moment");
  const Container& writer = writers.front();
  auto frozen = FrozenMount::freeze(writer, writer_target(writer, volume.name));
  if (!frozen.ok())
    return make_error(frozen.error().code, "volume " + volume.name + " is in use by running container " +
                                               writer.id.substr(0, 12) + ", whose file system could not be " +
                                               "frozen for a consistent snapshot (" + frozen.error().message +
                                               "); stop the container, or try again");
  auto snapshot = store.snapshot_locked(volume, name);
  const Status thawed = frozen->thaw();
  if (snapshot.ok() && !thawed.ok())
    return make_error(thawed.error().code, "snapshot " + snapshot->name + " was taken, but thawing container " +
                                               writer.id.substr(0, 12) + " failed: " + thawed.error().message);
  return snapshot;
}

}  // namespace hyper::runtime::volume
