// The C ABI's rules that need no /dev/kvm: struct sizes, the config's defaults and
// checks, error codes and messages, NULL handles.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <thread>

#include "capi/config.hpp"
#include "capi/hyper_vmm.h"

using namespace hyper;

namespace {

hyper_vmm_config base_config() {
  hyper_vmm_config config;
  hyper_vmm_config_init(&config);
  config.kernel = "/nonexistent/vmlinux";
  return config;
}

// hyper_vmm_create's code for `config`, which must fail; its message in `message`.
int create_fails(const hyper_vmm_config& config, std::string& message) {
  hyper_vmm* vm = reinterpret_cast<hyper_vmm*>(&message);  // must be reset to NULL
  const int rc = hyper_vmm_create(&config, &vm);
  CHECK(vm == nullptr);
  message = hyper_vmm_last_error();
  return rc;
}

}  // namespace

TEST_CASE("capi: config_init gives the documented defaults") {
  hyper_vmm_config config;
  std::memset(&config, 0xff, sizeof config);
  hyper_vmm_config_init(&config);
  CHECK(config.struct_size == sizeof config);
  CHECK(config.struct_size == capi::kConfigSizeV1);
  CHECK(config.console_fd == -1);
  CHECK(config.log_fd == -1);
  CHECK(config.kernel == nullptr);
  CHECK(config.flags == 0);

  config.kernel = "/k";
  auto machine = capi::to_machine_config(config);
  REQUIRE(machine.ok());
  CHECK(machine->kernel == "/k");
  CHECK(!machine->initrd);
  CHECK(machine->extra_cmdline.empty());
  CHECK(machine->vcpus == 1);
  CHECK(machine->memory_mib == 128);
  CHECK(machine->console_fd == -1);
  CHECK(machine->seccomp);
  CHECK(!machine->rng);
  CHECK(!machine->hugepages);
  CHECK(!machine->handle_signals);  // a library never takes the program's signals
  CHECK(machine->disks.empty());
  CHECK(!machine->vsock);
}

TEST_CASE("capi: every config field reaches the machine") {
  const hyper_vmm_disk disks[] = {{"/img/a.raw", 0, 0}, {"nbd://127.0.0.1:10809/x", 1, 0}};
  hyper_vmm_config config = base_config();
  config.initrd = "/i.cpio";
  config.cmdline = "quiet test_exit=3";
  config.vcpus = 2;
  config.memory_mib = 256;
  config.console_fd = 7;
  config.flags = HYPER_VMM_RNG | HYPER_VMM_NO_SECCOMP | HYPER_VMM_HUGEPAGES;
  config.disks = disks;
  config.disk_count = 2;
  config.vsock_cid = 3;
  config.vsock_socket = "/run/v.sock";
  config.start_ns = 12345;
  auto machine = capi::to_machine_config(config);
  REQUIRE(machine.ok());
  CHECK(machine->initrd == std::optional<std::string>("/i.cpio"));
  CHECK(machine->extra_cmdline == "quiet test_exit=3");
  CHECK(machine->vcpus == 2);
  CHECK(machine->memory_mib == 256);
  CHECK(machine->console_fd == 7);
  CHECK(machine->rng);
  CHECK(!machine->seccomp);
  CHECK(machine->hugepages);
  REQUIRE(machine->disks.size() == 2);
  CHECK(machine->disks[0].path == "/img/a.raw");
  CHECK(!machine->disks[0].read_only);
  CHECK(machine->disks[1].path == "nbd://127.0.0.1:10809/x");
  CHECK(machine->disks[1].read_only);
  REQUIRE(machine->vsock);
  CHECK(machine->vsock->guest_cid == 3);
  CHECK(machine->vsock->socket_path == "/run/v.sock");
  CHECK(machine->start_ns == 12345);
}

TEST_CASE("capi: the config's own checks") {
  hyper_vmm_config config = base_config();
  const hyper_vmm_disk no_path{nullptr, 0, 0};
  const hyper_vmm_disk reserved{"/a", 0, 1};
  const hyper_vmm_disk http{"http://example.com/disk", 0, 0};
  struct Case {
    const char* name;
    void (*change)(hyper_vmm_config&, const hyper_vmm_disk*);
    const hyper_vmm_disk* disk;
    const char* message;
  };
  const Case cases[] = {
      {"no kernel", [](hyper_vmm_config& c, const hyper_vmm_disk*) { c.kernel = nullptr; }, nullptr, "kernel is NULL"},
      {"empty kernel", [](hyper_vmm_config& c, const hyper_vmm_disk*) { c.kernel = ""; }, nullptr, "kernel is NULL or empty"},
      {"unknown flag", [](hyper_vmm_config& c, const hyper_vmm_disk*) { c.flags = 1u << 20; }, nullptr, "unknown bits 0x100000"},
      {"disks NULL", [](hyper_vmm_config& c, const hyper_vmm_disk*) { c.disk_count = 1; }, nullptr, "disks is NULL but disk_count is 1"},
      {"disk path NULL", [](hyper_vmm_config& c, const hyper_vmm_disk* d) { c.disks = d; c.disk_count = 1; }, &no_path,
       "disks[0].path is NULL"},
      {"disk reserved", [](hyper_vmm_config& c, const hyper_vmm_disk* d) { c.disks = d; c.disk_count = 1; }, &reserved,
       "disks[0].reserved must be 0"},
      {"disk URI", [](hyper_vmm_config& c, const hyper_vmm_disk* d) { c.disks = d; c.disk_count = 1; }, &http,
       "is neither a raw image path nor nbd://"},
      {"vsock without socket", [](hyper_vmm_config& c, const hyper_vmm_disk*) { c.vsock_cid = 3; }, nullptr,
       "vsock_socket is NULL"},
      {"socket without vsock", [](hyper_vmm_config& c, const hyper_vmm_disk*) { c.vsock_socket = "/s"; }, nullptr,
       "vsock_cid is 0"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    hyper_vmm_config changed = config;
    c.change(changed, c.disk);
    auto machine = capi::to_machine_config(changed);
    REQUIRE(!machine.ok());
    CHECK(machine.error().code == Errc::invalid_argument);
    CHECK(machine.error().message.find(c.message) != std::string::npos);
    std::string message;
    CHECK(create_fails(changed, message) == HYPER_VMM_ERR_INVALID_ARGUMENT);
    CHECK(message.find(c.message) != std::string::npos);
  }
}

TEST_CASE("capi: struct_size from an unknown ABI is refused") {
  std::string message;
  hyper_vmm_config config = base_config();
  config.struct_size = 0;
  CHECK(create_fails(config, message) == HYPER_VMM_ERR_ABI);
  CHECK(message.find("struct_size 0") != std::string::npos);
  config.struct_size = sizeof config - 8;  // no version had this size
  CHECK(create_fails(config, message) == HYPER_VMM_ERR_ABI);
  config.struct_size = sizeof config + 8;  // a newer header's: fields this library cannot honour
  CHECK(create_fails(config, message) == HYPER_VMM_ERR_ABI);
  CHECK(message.find("hyper_vmm_config") != std::string::npos);
  CHECK(capi::known_struct_size(capi::kConfigSizeV1, capi::kConfigSizeV1, sizeof config));
}

TEST_CASE("capi: the machine's range checks come before /dev/kvm, worded for C") {
  std::string message;
  hyper_vmm_config config = base_config();
  config.memory_mib = 16;
  CHECK(create_fails(config, message) == HYPER_VMM_ERR_INVALID_ARGUMENT);
  CHECK(message.rfind("memory_mib must be between", 0) == 0);
  config = base_config();
  config.vcpus = 65;
  CHECK(create_fails(config, message) == HYPER_VMM_ERR_INVALID_ARGUMENT);
  CHECK(message.rfind("vcpus must be between 1 and 64", 0) == 0);
}

TEST_CASE("capi: NULL arguments are errors, never crashes") {
  hyper_vmm* vm = nullptr;
  CHECK(hyper_vmm_create(nullptr, &vm) == HYPER_VMM_ERR_INVALID_ARGUMENT);
  CHECK(std::string(hyper_vmm_last_error()) == "hyper_vmm_create: config is NULL");
  const hyper_vmm_config config = base_config();
  CHECK(hyper_vmm_create(&config, nullptr) == HYPER_VMM_ERR_INVALID_ARGUMENT);
  hyper_vmm_exit exit_info{};
  exit_info.struct_size = sizeof exit_info;
  CHECK(hyper_vmm_run(nullptr, &exit_info) == HYPER_VMM_ERR_INVALID_ARGUMENT);
  CHECK(hyper_vmm_stop(nullptr) == HYPER_VMM_ERR_INVALID_ARGUMENT);
  struct hyper_vmm_boot_timings timings {};
  timings.struct_size = sizeof timings;
  CHECK(hyper_vmm_timings(nullptr, &timings) == HYPER_VMM_ERR_INVALID_ARGUMENT);
  hyper_vmm_destroy(nullptr);
}

TEST_CASE("capi: codes and reasons have names; the message is per thread") {
  for (int code = HYPER_VMM_ERR_INTERNAL; code <= HYPER_VMM_OK; ++code) {
    CAPTURE(code);
    CHECK(std::string(hyper_vmm_strerror(code)) != "unknown error code");
  }
  CHECK(std::string(hyper_vmm_strerror(1)) == "unknown error code");
  CHECK(std::string(hyper_vmm_strerror(HYPER_VMM_ERR_INTERNAL - 1)) == "unknown error code");
  for (int reason = HYPER_VMM_EXIT_GUEST_EXIT; reason <= HYPER_VMM_EXIT_STOPPED; ++reason) {
    CAPTURE(reason);
    CHECK(std::string(hyper_vmm_exit_reason_name(reason)) != "unknown exit reason");
  }
  CHECK(std::string(hyper_vmm_exit_reason_name(0)) == "unknown exit reason");
  CHECK(hyper_vmm_version() == HYPER_VMM_ABI_VERSION);

  CHECK(hyper_vmm_stop(nullptr) == HYPER_VMM_ERR_INVALID_ARGUMENT);
  std::string other_thread;
  std::thread([&] { other_thread = hyper_vmm_last_error(); }).join();
  CHECK(other_thread.empty());
  CHECK(std::string(hyper_vmm_last_error()) == "hyper_vmm_stop: vm is NULL");
}

TEST_CASE("capi: every exit kind and error category has its C value") {
  CHECK(capi::exit_reason(ExitKind::guest_exit) == HYPER_VMM_EXIT_GUEST_EXIT);
  CHECK(capi::exit_reason(ExitKind::reset) == HYPER_VMM_EXIT_RESET);
  CHECK(capi::exit_reason(ExitKind::power_off) == HYPER_VMM_EXIT_POWER_OFF);
  CHECK(capi::exit_reason(ExitKind::triple_fault) == HYPER_VMM_EXIT_TRIPLE_FAULT);
  CHECK(capi::exit_reason(ExitKind::panic) == HYPER_VMM_EXIT_PANIC);
  CHECK(capi::exit_reason(ExitKind::crash) == HYPER_VMM_EXIT_CRASH);
  CHECK(capi::exit_reason(ExitKind::error) == HYPER_VMM_EXIT_ERROR);
  CHECK(capi::exit_reason(ExitKind::signal) == HYPER_VMM_EXIT_STOPPED);
  CHECK(capi::error_code(Errc::not_found) == HYPER_VMM_ERR_NOT_FOUND);
  CHECK(capi::error_code(Errc::permission_denied) == HYPER_VMM_ERR_PERMISSION);
  CHECK(capi::error_code(Errc::bad_image) == HYPER_VMM_ERR_BAD_IMAGE);
  CHECK(capi::error_code(Errc::kvm) == HYPER_VMM_ERR_KVM);
  const capi::Failure failure = capi::to_failure(make_error(Errc::bad_image, "kernel image /x: truncated"));
  CHECK(failure.code == HYPER_VMM_ERR_BAD_IMAGE);
  CHECK(failure.message == "kernel image /x: truncated");
}
