#include "virtio/fs.hpp"

#include <fcntl.h>

#include <cstring>

namespace hyper::virtio {
namespace {

// Transport features the back-end implements on the rings it serves and the driver may
// use; everything else the back-end offers (logging, protocol features) is between us.
constexpr uint64_t kRingFeatures = kFeatureRingEventIdx | kFeatureRingIndirectDesc;

std::string name_of(const FsOptions& options) { return "virtio-fs " + options.tag; }

Result<vhost_user::Frontend> open_frontend(const FsOptions& options) {
  if (options.socket_fd < 0) return vhost_user::Frontend::connect(options.socket_path, options.reply_timeout_ms);
  UniqueFd fd(::fcntl(options.socket_fd, F_DUPFD_CLOEXEC, 0));
  if (!fd.valid()) return Error::from_errno("duplicating the back-end's socket fd " + std::to_string(options.socket_fd));
  return vhost_user::Frontend::adopt(std::move(fd), options.reply_timeout_ms);
}

Result<std::array<EventFd, Fs::kQueues>> eventfds() {
  return std::array<EventFd, Fs::kQueues>{HYPER_TRY(EventFd::create()), HYPER_TRY(EventFd::create())};
}

Error with_context(const FsOptions& options, const Error& error) {
  return make_error(error.code, name_of(options) + " (" + (options.socket_path.empty() ? "fd" : options.socket_path) +
                                    "): " + error.message);
}

}  // namespace

Status check_fs_tag(const std::string& tag) {
  if (tag.empty() || tag.size() > Fs::kTagBytes || tag.find('\0') != std::string::npos)
    return make_error(Errc::invalid_argument, "virtio-fs tag '" + tag + "' must be 1 to " + std::to_string(Fs::kTagBytes) +
                                                  " bytes (it has " + std::to_string(tag.size()) + ")");
  return {};
}

Result<std::shared_ptr<Fs>> Fs::connect(const FsOptions& options) {
  HYPER_CHECK(check_fs_tag(options.tag));
  auto frontend = open_frontend(options);
  if (!frontend) return with_context(options, frontend.error());
  auto features = frontend->open_session();
  if (!features) return with_context(options, features.error());
  if (!(*features & kFeatureVersion1))
    return with_context(options, make_error(Errc::unsupported, "the back-end does not offer VIRTIO_F_VERSION_1"));
  auto kicks = HYPER_TRY(eventfds());
  auto calls = HYPER_TRY(eventfds());
  return std::shared_ptr<Fs>(new Fs(options, std::move(frontend).value(), *features, std::move(kicks), std::move(calls)));
}

Fs::Fs(FsOptions options, vhost_user::Frontend frontend, uint64_t backend_features, std::array<EventFd, kQueues> kicks,
       std::array<EventFd, kQueues> calls)
    : options_(std::move(options)),
      backend_features_(backend_features),
      features_(kFeatureVersion1 | (backend_features & kRingFeatures)),
      socket_fd_(frontend.socket_fd()),
      kicks_(std::move(kicks)),
      calls_(std::move(calls)),
      frontend_(std::move(frontend)) {}

void Fs::read_config(uint64_t offset, std::span<uint8_t> data) const {
  uint8_t config[kTagBytes + 4] = {};
  std::memcpy(config, options_.tag.data(), options_.tag.size());
  const uint32_t queues = kRequestQueues;  // little-endian, as is the host
  std::memcpy(config + kTagBytes, &queues, sizeof queues);
  read_config_window(config, offset, data);
}

std::vector<int> Fs::kick_fds() const {
  std::vector<int> fds;
  for (const auto& k : kicks_) fds.push_back(k.fd());
  return fds;
}

// The transport checked the rings already; this checks again, against the memory the
// back-end will map, before any address leaves the process.
Result<Fs::RingPlan> Fs::plan_rings(const Activation& activation) {
  if (activation.queues.size() != kQueues)
    return make_error(Errc::invalid_argument, "virtio-fs: expected " + std::to_string(kQueues) + " queues");
  RingPlan plan;
  plan.memory = HYPER_TRY(vhost_user::memory_table(*activation.memory));
  for (uint32_t q = 0; q < kQueues; ++q) {
    const QueueLayout& layout = activation.queues[q].layout();
    plan.rings[q] = HYPER_TRY(vhost_user::vring_address(*activation.memory, q, layout));
    plan.sizes[q] = layout.size;
  }
  return plan;
}

Status Fs::activate(Activation activation) {
  std::lock_guard lock(control_);
  if (gone_) return make_error(Errc::io, name_of(options_) + ": the back-end is gone: " + frontend_.broken());
  const RingPlan plan = HYPER_TRY(plan_rings(activation));
  const uint64_t driver_features = activation.features;
  // Active before the rings start: an interrupt for the first completions must not be lost.
  HYPER_CHECK(slot_.set(std::move(activation), kQueues, "virtio-fs"));
  if (Status started = start_rings(driver_features, plan); !started) {
    slot_.clear();
    stop_rings();  // whatever did start
    return with_context(options_, started.error());
  }
  ++activations_;
  return {};
}

// The order QEMU uses, which back-ends expect: features and memory first; per ring its
// size, its first index (a driver starts at 0 after each reset), its addresses (which the
// back-end translates through the memory table), where to interrupt, and last the kick fd,
// which starts the ring; then enable the rings (with protocol features they start disabled).
Status Fs::start_rings(uint64_t driver_features, const RingPlan& plan) {
  const bool protocol = backend_features_ & vhost_user::kFeatureProtocolFeatures;
  HYPER_CHECK(frontend_.set_features(driver_features | (protocol ? vhost_user::kFeatureProtocolFeatures : 0)));
  HYPER_CHECK(frontend_.set_mem_table(plan.memory));
  for (uint32_t q = 0; q < kQueues; ++q) {
    HYPER_CHECK(frontend_.set_vring_num(q, plan.sizes[q]));
    HYPER_CHECK(frontend_.set_vring_base(q, 0));
    HYPER_CHECK(frontend_.set_vring_addr(plan.rings[q]));
    HYPER_CHECK(frontend_.set_vring_call(q, calls_[q].fd()));
    HYPER_CHECK(frontend_.set_vring_kick(q, kicks_[q].fd()));
    started_[q] = true;
  }
  if (protocol) {
    for (uint32_t q = 0; q < kQueues; ++q) HYPER_CHECK(frontend_.set_vring_enable(q, true));
  }
  return {};
}

// After this the back-end no longer touches the rings (GET_VRING_BASE stops a ring once
// the requests in flight on it are done). Failures leave the connection shut down; the
// back-end then exits, and the event loop hears of the hang-up.
void Fs::stop_rings() {
  const bool protocol = backend_features_ & vhost_user::kFeatureProtocolFeatures;
  for (uint32_t q = 0; q < kQueues; ++q) {
    if (!started_[q]) continue;
    started_[q] = false;
    if (protocol) (void)frontend_.set_vring_enable(q, false);
    (void)frontend_.get_vring_base(q);
  }
}

void Fs::reset() {
  slot_.clear();  // no interrupt from here on: the driver is tearing its queues down
  std::lock_guard lock(control_);
  stop_rings();
}

// Reached only when a kick did not go through the ioeventfd (the machine registers
// kick_fds() with KVM): pass it on as KVM would.
void Fs::queue_notify(uint32_t index) {
  if (index < kQueues) kicks_[index].signal();
}

Status Fs::attach(EventLoop& loop) {
  loop_ = &loop;
  for (uint32_t q = 0; q < kQueues; ++q) {
    HYPER_CHECK(loop.add(calls_[q].fd(), [this, q] {
      (void)calls_[q].drain();
      forward_call(q);
    }));
  }
  // Only the hang-up: replies are read by whoever sent the request.
  return loop.add(socket_fd_, EPOLLRDHUP, [this](uint32_t) { on_backend_hangup(); });
}

// The back-end already applied the driver's interrupt suppression (event-idx or
// VRING_AVAIL_F_NO_INTERRUPT) before it signalled.
void Fs::forward_call(uint32_t) {
  slot_.run([](Activation& active) {
    active.notify_used();
    return true;
  });
}

void Fs::on_backend_hangup() {
  loop_->remove(socket_fd_);  // level-triggered: it would fire forever
  gone_ = true;
  // The hang-up may be ours, after a bad reply: say so when the vCPU that saw it is done
  // (never wait for it here: the event loop must not stall behind a slow back-end).
  std::string why;
  if (std::unique_lock lock(control_, std::try_to_lock); lock.owns_lock() && !frontend_.broken().empty())
    why = " (the VMM gave the connection up: " + frontend_.broken() + ")";
  options_.log(name_of(options_) + ": the vhost-user back-end hung up; the device needs a reset, and the guest's "
                                   "requests to it go unanswered" + why);
  // Work that "fails" puts an active device into DEVICE_NEEDS_RESET.
  slot_.run([](Activation&) { return false; });
}

std::string Fs::describe() const {
  std::string text = "back-end " + (options_.socket_path.empty() ? std::string("fd") : options_.socket_path);
  text += gone_ ? " gone" : " connected";
  if (std::unique_lock lock(control_, std::try_to_lock); lock.owns_lock()) {
    if (!frontend_.broken().empty()) text += " (" + frontend_.broken() + ")";
    text += ", " + std::to_string(activations_) + " activation(s)";
  } else {
    text += ", busy: a vCPU is talking to the back-end";
  }
  return text + "; " + slot_.describe();
}

}  // namespace hyper::virtio
