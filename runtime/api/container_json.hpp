// Containers as the Docker Engine API shows them: `hyper inspect` prints the same JSON
// that hyperd serves at /containers/{id}/json, and hyperd's /containers/json lists them
// in the shape of Docker's ps. Docker's field order, not alphabetical.
#pragma once

#include <nlohmann/json.hpp>

#include "runtime/container_store.hpp"

namespace hyper::runtime::api {

using OrderedJson = nlohmann::ordered_json;

// GET /containers/{id}/json
OrderedJson container_json(const Container& container);
// "Up 5 minutes", "Exited (0) 3 seconds ago", "Created": ps's STATUS, the list's "Status".
std::string status_text(const Container& container);
// One entry of GET /containers/json
OrderedJson container_summary_json(const Container& container);

}  // namespace hyper::runtime::api
