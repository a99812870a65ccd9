// The arm64 machine's device tree, read back with libfdt node by node; no KVM needed.
#include <doctest/doctest.h>
#include <libfdt.h>

#include <cstring>
#include <string>
#include <vector>

#include "boot/device_tree.hpp"
#include "vmm/layout_arm64.hpp"

using namespace hyper;
using namespace hyper::boot;
namespace arm = hyper::layout::arm64;

namespace {

ArmMachineDescription two_cpu_machine() {
  ArmMachineDescription m;
  m.memory = {arm::kRamStart, 256ULL << 20};
  m.cpu_mpidrs = {0x80000000, 0x80000001};  // bit 31 is RES1 in MPIDR_EL1
  m.gic = GicVersion::v3;
  m.gic_distributor = {arm::kGicDistributorStart, arm::kGicDistributorSize};
  m.gic_cpu = {arm::kGicRedistributorStart, 2 * arm::kGicRedistributorSizePerVcpu};
  m.uart = {{arm::kUartStart, arm::kUartSize}, arm::kUartSpi};
  m.virtio = {{{arm::kVirtioMmioStart, arm::kVirtioMmioWindowSize}, arm::kVirtioFirstSpi},
              {{arm::kVirtioMmioStart + arm::kVirtioMmioWindowSize, arm::kVirtioMmioWindowSize}, arm::kVirtioFirstSpi + 1}};
  m.bootargs = "console=ttyS0 panic=-1";
  m.initrd = MmioRange{arm::kRamStart + (32ULL << 20), 12345};
  m.rng_seed = std::vector<uint8_t>(64, 0xab);
  return m;
}

struct Tree {
  std::vector<uint8_t> bytes;
  const void* fdt() const { return bytes.data(); }

  int node(const std::string& path) const {
    const int offset = fdt_path_offset(fdt(), path.c_str());
    INFO("node " << path);
    REQUIRE(offset >= 0);
    return offset;
  }
  bool has_node(const std::string& path) const { return fdt_path_offset(fdt(), path.c_str()) >= 0; }
  std::string prop_bytes(const std::string& path, const char* name) const {
    int len = 0;
    const void* value = fdt_getprop(fdt(), node(path), name, &len);
    INFO(path << " " << name);
    REQUIRE(value != nullptr);
    return std::string(static_cast<const char*>(value), static_cast<size_t>(len));
  }
  bool has_prop(const std::string& path, const char* name) const {
    return fdt_getprop(fdt(), node(path), name, nullptr) != nullptr;
  }
  std::string string(const std::string& path, const char* name) const {
    const std::string raw = prop_bytes(path, name);
    REQUIRE(!raw.empty());
    CHECK(raw.back() == '\0');
    return raw.substr(0, raw.size() - 1);
  }
  std::vector<uint32_t> cells(const std::string& path, const char* name) const {
    const std::string raw = prop_bytes(path, name);
    REQUIRE(raw.size() % 4 == 0);
    std::vector<uint32_t> out(raw.size() / 4);
    for (size_t i = 0; i < out.size(); ++i) {
      fdt32_t cell;
      std::memcpy(&cell, raw.data() + 4 * i, 4);
      out[i] = fdt32_to_cpu(cell);
    }
    return out;
  }
  // Pairs of cells read as 64-bit values (#address-cells = #size-cells = 2).
  std::vector<uint64_t> pairs(const std::string& path, const char* name) const {
    const auto c = cells(path, name);
    REQUIRE(c.size() % 2 == 0);
    std::vector<uint64_t> out;
    for (size_t i = 0; i < c.size(); i += 2) out.push_back((uint64_t{c[i]} << 32) | c[i + 1]);
    return out;
  }
};

Tree build(const ArmMachineDescription& m) {
  auto bytes = build_device_tree(m);
  REQUIRE(bytes.ok());
  Tree tree{std::move(bytes).value()};
  REQUIRE(fdt_check_full(tree.fdt(), tree.bytes.size()) == 0);
  return tree;
}

int count_subnodes(const Tree& t, const std::string& path) {
  int count = 0;
  int child;
  fdt_for_each_subnode(child, t.fdt(), t.node(path)) ++count;
  return count;
}

}  // namespace

TEST_CASE("device tree: a valid, compact tree whose root names the machine") {
  const Tree t = build(two_cpu_machine());
  CHECK(fdt_totalsize(t.fdt()) == t.bytes.size());
  CHECK(t.bytes.size() < 8192);
  CHECK(t.string("/", "compatible") == "linux,dummy-virt");
  CHECK(t.cells("/", "#address-cells") == std::vector<uint32_t>{2});
  CHECK(t.cells("/", "#size-cells") == std::vector<uint32_t>{2});
  CHECK(t.cells("/", "interrupt-parent") == std::vector<uint32_t>{kGicPhandle});
  // memory, cpus, psci, GIC, timer, UART, 2 virtio, chosen: nothing else.
  CHECK(count_subnodes(t, "/") == 9);
}

TEST_CASE("device tree: memory") {
  const Tree t = build(two_cpu_machine());
  const std::string memory = "/memory@40000000";
  CHECK(t.string(memory, "device_type") == "memory");
  CHECK(t.pairs(memory, "reg") == std::vector<uint64_t>{arm::kRamStart, 256ULL << 20});
}

TEST_CASE("device tree: one cpu node per vCPU, addressed by its MPIDR affinity, started by PSCI") {
  const Tree t = build(two_cpu_machine());
  CHECK(count_subnodes(t, "/cpus") == 2);
  CHECK(t.cells("/cpus", "#address-cells") == std::vector<uint32_t>{2});
  CHECK(t.cells("/cpus", "#size-cells") == std::vector<uint32_t>{0});
  for (uint64_t id : {0, 1}) {
    const std::string cpu = "/cpus/cpu@" + std::to_string(id);
    CHECK(t.string(cpu, "device_type") == "cpu");
    CHECK(t.string(cpu, "compatible") == "arm,arm-v8");
    CHECK(t.string(cpu, "enable-method") == "psci");
    // RES1 bit 31 and the MT/U bits are not part of the affinity Linux compares.
    CHECK(t.pairs(cpu, "reg") == std::vector<uint64_t>{id});
  }
}

TEST_CASE("device tree: a second cluster's vCPU keeps its Aff1") {
  auto m = two_cpu_machine();
  m.cpu_mpidrs = {0x80000000, 0x80000100};
  const Tree t = build(m);
  CHECK(t.pairs("/cpus/cpu@100", "reg") == std::vector<uint64_t>{0x100});
}

TEST_CASE("device tree: PSCI 0.2 through HVC") {
  const Tree t = build(two_cpu_machine());
  CHECK(t.string("/psci", "compatible") == "arm,psci-0.2");
  CHECK(t.string("/psci", "method") == "hvc");
}

TEST_CASE("device tree: a GICv3 with its distributor and redistributors") {
  const Tree t = build(two_cpu_machine());
  const std::string gic = "/intc@8000000";
  CHECK(t.string(gic, "compatible") == "arm,gic-v3");
  CHECK(t.has_prop(gic, "interrupt-controller"));
  CHECK(t.cells(gic, "#interrupt-cells") == std::vector<uint32_t>{3});
  CHECK(t.cells(gic, "phandle") == std::vector<uint32_t>{kGicPhandle});
  CHECK(t.pairs(gic, "reg") == std::vector<uint64_t>{arm::kGicDistributorStart, arm::kGicDistributorSize,
                                                     arm::kGicRedistributorStart, 2 * arm::kGicRedistributorSizePerVcpu});
  CHECK(t.cells(gic, "interrupts") == std::vector<uint32_t>{kFdtPpi, arm::kGicMaintenancePpi, kIrqLevelHigh});
  CHECK(fdt_node_offset_by_phandle(t.fdt(), kGicPhandle) == t.node(gic));
}

TEST_CASE("device tree: a GICv2 with its CPU interface") {
  auto m = two_cpu_machine();
  m.gic = GicVersion::v2;
  m.gic_cpu = {arm::kGicV2CpuInterfaceStart, arm::kGicV2CpuInterfaceSize};
  const Tree t = build(m);
  const std::string gic = "/intc@8000000";
  CHECK(t.string(gic, "compatible") == "arm,cortex-a15-gic");
  CHECK(t.pairs(gic, "reg") == std::vector<uint64_t>{arm::kGicDistributorStart, arm::kGicDistributorSize,
                                                     arm::kGicV2CpuInterfaceStart, arm::kGicV2CpuInterfaceSize});
}

TEST_CASE("device tree: the architected timer's four PPIs") {
  const Tree t = build(two_cpu_machine());
  CHECK(t.string("/timer", "compatible") == "arm,armv8-timer");
  CHECK(t.cells("/timer", "interrupts") ==
        std::vector<uint32_t>{kFdtPpi, 13, kIrqLevelHigh, kFdtPpi, 14, kIrqLevelHigh, kFdtPpi, 11, kIrqLevelHigh,
                              kFdtPpi, 10, kIrqLevelHigh});
}

TEST_CASE("device tree: the UART, its clock and its interrupt") {
  const Tree t = build(two_cpu_machine());
  const std::string uart = "/uart@9000000";
  CHECK(t.string(uart, "compatible") == "ns16550a");
  CHECK(t.pairs(uart, "reg") == std::vector<uint64_t>{arm::kUartStart, arm::kUartSize});
  CHECK(t.cells(uart, "clock-frequency") == std::vector<uint32_t>{1843200});
  CHECK(t.cells(uart, "interrupts") == std::vector<uint32_t>{kFdtSpi, arm::kUartSpi, kIrqEdgeRising});
}

TEST_CASE("device tree: one virtio,mmio node per window, each with its own SPI") {
  const Tree t = build(two_cpu_machine());
  for (uint32_t i = 0; i < 2; ++i) {
    const uint64_t base = arm::kVirtioMmioStart + i * arm::kVirtioMmioWindowSize;
    const std::string node = "/" + virtio_node_name(base);
    CHECK(t.string(node, "compatible") == "virtio,mmio");
    CHECK(t.pairs(node, "reg") == std::vector<uint64_t>{base, arm::kVirtioMmioWindowSize});
    CHECK(t.cells(node, "interrupts") == std::vector<uint32_t>{kFdtSpi, arm::kVirtioFirstSpi + i, kIrqEdgeRising});
    CHECK(t.has_prop(node, "dma-coherent"));
  }
  CHECK(virtio_node_name(0xa000000) == "virtio_mmio@a000000");
}

TEST_CASE("device tree: chosen holds the command line, the console, the initrd and the rng seed") {
  const Tree t = build(two_cpu_machine());
  CHECK(t.string("/chosen", "bootargs") == "console=ttyS0 panic=-1");
  CHECK(t.string("/chosen", "stdout-path") == "/uart@9000000");
  CHECK(t.has_node(t.string("/chosen", "stdout-path")));
  const uint64_t start = arm::kRamStart + (32ULL << 20);
  CHECK(t.pairs("/chosen", "linux,initrd-start") == std::vector<uint64_t>{start});
  CHECK(t.pairs("/chosen", "linux,initrd-end") == std::vector<uint64_t>{start + 12345});
  CHECK(t.prop_bytes("/chosen", "rng-seed") == std::string(64, '\xab'));
}

TEST_CASE("device tree: no initrd, no seed, no virtio: those properties and nodes are absent") {
  auto m = two_cpu_machine();
  m.initrd.reset();
  m.rng_seed.clear();
  m.virtio.clear();
  const Tree t = build(m);
  CHECK_FALSE(t.has_prop("/chosen", "linux,initrd-start"));
  CHECK_FALSE(t.has_prop("/chosen", "rng-seed"));
  CHECK(count_subnodes(t, "/") == 7);
}

TEST_CASE("device tree: a long command line and many devices grow the tree; past 2 MiB is an error") {
  auto m = two_cpu_machine();
  m.bootargs = std::string(100000, 'x');
  for (uint32_t i = 2; i < 200; ++i)
    m.virtio.push_back({{arm::kVirtioMmioStart + i * arm::kVirtioMmioWindowSize, arm::kVirtioMmioWindowSize}, 16 + i});
  const Tree t = build(m);
  CHECK(t.string("/chosen", "bootargs").size() == 100000);
  CHECK(count_subnodes(t, "/") == 9 + 198);

  m.bootargs = std::string(3u << 20, 'x');
  auto too_big = build_device_tree(m);
  REQUIRE_FALSE(too_big.ok());
  CHECK(too_big.error().message.find("2 MiB") != std::string::npos);
}

TEST_CASE("device tree: an impossible machine is refused") {
  auto m = two_cpu_machine();
  m.cpu_mpidrs.clear();
  CHECK_FALSE(build_device_tree(m).ok());
  m = two_cpu_machine();
  m.memory.size = 0;
  CHECK_FALSE(build_device_tree(m).ok());
  m = two_cpu_machine();
  m.gic_cpu.size = 0;
  CHECK_FALSE(build_device_tree(m).ok());
}
