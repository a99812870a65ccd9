#include "runtime/vm_defaults.hpp"

#include <unistd.h>

#include <cstdlib>

namespace hyper::runtime {
namespace {

Result<std::string> locate(const char* env, const char* built, const char* what) {
  const char* from_env = std::getenv(env);
  const std::string path = from_env && *from_env ? from_env : built;
  if (path.empty() || ::access(path.c_str(), R_OK) != 0)
    return make_error(Errc::not_found, std::string("the guest ") + what + " is missing (" +
                                           (path.empty() ? "not built" : path) + "): run scripts/setup, or set " + env);
  return path;
}

}  // namespace

Result<GuestArtifacts> find_guest_artifacts() {
  GuestArtifacts artifacts;
  artifacts.kernel = HYPER_TRY(locate("HYPER_KERNEL", HYPER_BUILT_KERNEL, "kernel"));
  artifacts.initrd = HYPER_TRY(locate("HYPER_INITRD", HYPER_BUILT_INITRD, "init"));
  return artifacts;
}

}  // namespace hyper::runtime
