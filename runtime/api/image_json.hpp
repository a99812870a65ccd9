// Images as the Docker Engine API shows them: `hyper image inspect` prints what hyperd
// serves at /images/{name}/json; hyperd's /images/json lists them in Docker's shape.
#pragma once

#include "runtime/api/container_json.hpp"
#include "runtime/image_store.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime::api {

// GET /images/{name}/json
Result<OrderedJson> image_json(const ImageStore& store, const Image& image);
// One entry of GET /images/json
OrderedJson image_summary_json(const Image& image);

}  // namespace hyper::runtime::api
