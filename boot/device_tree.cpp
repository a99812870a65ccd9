#include "boot/device_tree.hpp"

#include <libfdt.h>

#include <cstdio>
#include <initializer_list>

#include "vmm/layout_arm64.hpp"

namespace hyper::boot {
namespace {

// The first tree we try holds a few hundred virtio nodes; an rng seed or a long
// command line can need more, up to the boot protocol's limit.
constexpr size_t kInitialTreeSize = 64 * 1024;

std::string hex(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "%llx", static_cast<unsigned long long>(value));
  return text;
}

// libfdt's sequential writer over a buffer it may not outgrow; the first failure sticks,
// so the builder below reads as the tree it writes, and the error is checked once.
class TreeWriter {
 public:
  explicit TreeWriter(size_t size) : buffer_(size) {
    fail_if(fdt_create(buffer_.data(), static_cast<int>(buffer_.size())), "create");
    fail_if(fdt_finish_reservemap(buffer_.data()), "finish the reserve map");
  }
  void begin(const std::string& name) { fail_if(fdt_begin_node(buffer_.data(), name.c_str()), name); }
  void end() { fail_if(fdt_end_node(buffer_.data()), "end node"); }
  void string(const char* name, const std::string& value) {
    fail_if(fdt_property(buffer_.data(), name, value.c_str(), static_cast<int>(value.size() + 1)), name);
  }
  void empty(const char* name) { fail_if(fdt_property(buffer_.data(), name, nullptr, 0), name); }
  void u32(const char* name, uint32_t value) { fail_if(fdt_property_u32(buffer_.data(), name, value), name); }
  void cells(const char* name, std::initializer_list<uint32_t> values) { cells(name, std::vector<uint32_t>(values)); }
  void cells(const char* name, const std::vector<uint32_t>& values) {
    std::vector<fdt32_t> big_endian;
    for (const uint32_t v : values) big_endian.push_back(cpu_to_fdt32(v));
    fail_if(fdt_property(buffer_.data(), name, big_endian.data(), static_cast<int>(big_endian.size() * 4)), name);
  }
  // 64-bit values as pairs of cells, as #address-cells = #size-cells = 2 wants them.
  void pairs(const char* name, std::initializer_list<uint64_t> values) {
    std::vector<uint32_t> split;
    for (const uint64_t v : values) {
      split.push_back(static_cast<uint32_t>(v >> 32));
      split.push_back(static_cast<uint32_t>(v));
    }
    cells(name, split);
  }
  void bytes(const char* name, std::span<const uint8_t> value) {
    fail_if(fdt_property(buffer_.data(), name, value.data(), static_cast<int>(value.size())), name);
  }

  [[nodiscard]] bool out_of_space() const { return error_ == -FDT_ERR_NOSPACE; }
  Result<std::vector<uint8_t>> finish() {
    fail_if(fdt_finish(buffer_.data()), "finish");
    if (error_ != 0)
      return make_error(Errc::invalid_argument, "device tree: " + what_ + ": " + fdt_strerror(error_));
    const void* tree = buffer_.data();
    buffer_.resize(fdt_totalsize(tree));
    return std::move(buffer_);
  }

 private:
  void fail_if(int rc, const std::string& what) {
    if (rc >= 0 || error_ != 0) return;
    error_ = rc;
    what_ = what;
  }
  std::vector<uint8_t> buffer_;
  int error_ = 0;
  std::string what_;
};

void write_cpus(TreeWriter& fdt, const ArmMachineDescription& m) {
  fdt.begin("cpus");
  fdt.u32("#address-cells", 2);
  fdt.u32("#size-cells", 0);
  for (size_t i = 0; i < m.cpu_mpidrs.size(); ++i) {
    // Linux compares reg with MPIDR_EL1's affinity fields only.
    const uint64_t affinity = m.cpu_mpidrs[i] & 0xff00ffffffULL;
    fdt.begin("cpu@" + hex(affinity));
    fdt.string("device_type", "cpu");
    fdt.string("compatible", "arm,arm-v8");
    fdt.string("enable-method", "psci");
    fdt.pairs("reg", {affinity});
    fdt.end();
  }
  fdt.end();
}

void write_gic(TreeWriter& fdt, const ArmMachineDescription& m) {
  fdt.begin(std::string(kGicNodeName) + "@" + hex(m.gic_distributor.base));
  fdt.string("compatible", m.gic == GicVersion::v3 ? "arm,gic-v3" : "arm,cortex-a15-gic");
  fdt.empty("interrupt-controller");
  fdt.u32("#interrupt-cells", 3);
  fdt.pairs("reg", {m.gic_distributor.base, m.gic_distributor.size, m.gic_cpu.base, m.gic_cpu.size});
  fdt.u32("phandle", kGicPhandle);
  fdt.u32("#address-cells", 2);
  fdt.u32("#size-cells", 2);
  fdt.empty("ranges");
  fdt.cells("interrupts", {kFdtPpi, layout::arm64::kGicMaintenancePpi, kIrqLevelHigh});
  fdt.end();
}

void write_timer(TreeWriter& fdt) {
  using namespace layout::arm64;
  fdt.begin("timer");
  fdt.string("compatible", "arm,armv8-timer");
  fdt.empty("always-on");
  fdt.cells("interrupts", {kFdtPpi, kTimerSecurePhysPpi, kIrqLevelHigh, kFdtPpi, kTimerPhysPpi, kIrqLevelHigh,
                           kFdtPpi, kTimerVirtPpi, kIrqLevelHigh, kFdtPpi, kTimerHypPpi, kIrqLevelHigh});
  fdt.end();
}

std::string uart_node_name(const ArmMachineDescription& m) { return "uart@" + hex(m.uart.range.base); }

// Our UART and virtio-mmio devices raise their interrupts as edges (KVM_IRQFD).
void write_uart(TreeWriter& fdt, const ArmMachineDescription& m) {
  fdt.begin(uart_node_name(m));
  fdt.string("compatible", "ns16550a");
  fdt.pairs("reg", {m.uart.range.base, m.uart.range.size});
  fdt.u32("clock-frequency", m.uart_clock_hz);
  fdt.cells("interrupts", {kFdtSpi, m.uart.spi, kIrqEdgeRising});
  fdt.end();
}

void write_virtio(TreeWriter& fdt, const MmioDevice& device) {
  fdt.begin(virtio_node_name(device.range.base));
  fdt.string("compatible", "virtio,mmio");
  fdt.pairs("reg", {device.range.base, device.range.size});
  fdt.cells("interrupts", {kFdtSpi, device.spi, kIrqEdgeRising});
  fdt.empty("dma-coherent");
  fdt.end();
}

void write_chosen(TreeWriter& fdt, const ArmMachineDescription& m) {
  fdt.begin("chosen");
  fdt.string("bootargs", m.bootargs);
  fdt.string("stdout-path", "/" + uart_node_name(m));
  if (m.initrd) {
    fdt.pairs("linux,initrd-start", {m.initrd->base});
    fdt.pairs("linux,initrd-end", {m.initrd->base + m.initrd->size});
  }
  if (!m.rng_seed.empty()) fdt.bytes("rng-seed", m.rng_seed);
  fdt.end();
}

void write_tree(TreeWriter& fdt, const ArmMachineDescription& m) {
  fdt.begin("");
  fdt.string("compatible", "linux,dummy-virt");
  fdt.string("model", "hyper");
  fdt.u32("#address-cells", 2);
  fdt.u32("#size-cells", 2);
  fdt.u32("interrupt-parent", kGicPhandle);

  fdt.begin("memory@" + hex(m.memory.base));
  fdt.string("device_type", "memory");
  fdt.pairs("reg", {m.memory.base, m.memory.size});
  fdt.end();
  write_cpus(fdt, m);
  fdt.begin("psci");
  // Not also "arm,psci": that binding wants function IDs, which PSCI 0.2 defines itself.
  fdt.string("compatible", "arm,psci-0.2");
  fdt.string("method", "hvc");
  fdt.end();
  write_gic(fdt, m);
  write_timer(fdt);
  write_uart(fdt, m);
  for (const auto& device : m.virtio) write_virtio(fdt, device);
  write_chosen(fdt, m);
  fdt.end();
}

Status check(const ArmMachineDescription& m) {
  if (m.cpu_mpidrs.empty()) return make_error(Errc::invalid_argument, "device tree: no CPUs");
  if (m.memory.size == 0) return make_error(Errc::invalid_argument, "device tree: no memory");
  if (m.gic_distributor.size == 0 || m.gic_cpu.size == 0)
    return make_error(Errc::invalid_argument, "device tree: the GIC has no registers");
  return {};
}

}  // namespace

std::string virtio_node_name(uint64_t base) { return "virtio_mmio@" + hex(base); }

Result<std::vector<uint8_t>> build_device_tree(const ArmMachineDescription& machine) {
  HYPER_CHECK(check(machine));
  for (size_t size = kInitialTreeSize;; size *= 2) {
    TreeWriter fdt(size);
    write_tree(fdt, machine);
    if (fdt.out_of_space() && size < layout::arm64::kDeviceTreeMaxSize) continue;
    if (fdt.out_of_space())
      return make_error(Errc::invalid_argument, "the device tree would not fit in 2 MiB (the arm64 boot protocol's limit)");
    return fdt.finish();
  }
}

}  // namespace hyper::boot
