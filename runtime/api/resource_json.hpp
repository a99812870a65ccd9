// Networks and volumes as the Docker Engine API shows them: `hyper network inspect` and
// `hyper volume inspect` print what hyperd serves at /networks/{id} and /volumes/{name}.
#pragma once

#include <vector>

#include "runtime/api/container_json.hpp"
#include "runtime/network/network_store.hpp"
#include "runtime/volume/volume_store.hpp"

namespace hyper::runtime::api {

OrderedJson network_json(const net::NetworkStore& store, const net::Network& network);
// `all`: every container, to name the ones that use the volume.
OrderedJson volume_json(const volume::VolumeStore& volumes, const volume::Volume& v, const std::vector<Container>& all);

}  // namespace hyper::runtime::api
