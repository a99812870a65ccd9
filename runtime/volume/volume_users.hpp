// What ties volumes to containers: which containers mount a volume (a volume in use is
// not removed, as Docker refuses), the volumes a new container needs (an unknown name is
// created, as Docker does), and consistent snapshots of a volume a container is writing.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "runtime/container_store.hpp"
#include "runtime/volume/mount_spec.hpp"
#include "runtime/volume/volume_store.hpp"

namespace hyper::runtime::volume {

// The containers (running or not) whose mounts name `volume`.
std::vector<Container> containers_using(const std::vector<Container>& containers, const std::string& volume);

// Names each anonymous volume mount and creates every volume the mounts name that does
// not exist yet. The caller holds the store's lock until the container is recorded.
Status ensure_volumes(const VolumeStore& store, std::vector<Mount>& mounts);

// Removes `volume` unless a container refers to it.
Status remove_volume(const VolumeStore& store, const ContainerStore& containers, const Volume& volume);

// Removes the anonymous volumes of a container that is being removed (--rm, rm -v); the
// named ones stay, as with Docker.
void remove_anonymous_volumes(const VolumeStore& store, const ContainerStore& containers, const Container& container);

// A snapshot that reflects what was on the volume's disk at one instant: taken at once
// when no container writes the volume; else the writer's file system is frozen through
// its agent for the copy (a reflink is instant; a sparse copy takes as long as the data).
Result<Snapshot> take_snapshot(const VolumeStore& store, const ContainerStore& containers, const Volume& volume,
                               const std::optional<std::string>& name);

}  // namespace hyper::runtime::volume
