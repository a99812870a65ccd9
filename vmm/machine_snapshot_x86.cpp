// What an x86 snapshot holds (docs/snapshots.md). Sections: the machine's shape, each
// vCPU, the irqchip, the PIT, the clock, the devices (index 0 the UART, index 1 + i the
// i-th virtio-mmio window) and guest memory, which a restore maps copy-on-write from
// the file.
#include <linux/kvm.h>

#include "vmm/kvm_abi.hpp"
#include "vmm/machine_impl.hpp"
#include "vmm/snapshot_codec.hpp"
#include "vmm/vcpu_state.hpp"

namespace hyper {
namespace {

constexpr uint32_t kUartDevice = 0;
constexpr uint32_t kIrqchips[] = {KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC};

std::string device_list(const std::vector<uint32_t>& types) {
  std::string text = "[";
  for (size_t i = 0; i < types.size(); ++i) text += (i ? ", " : "") + std::string(virtio_type_name(types[i]));
  return text + "]";
}

Error bad_snapshot(const std::string& what) { return make_error(Errc::invalid_argument, "snapshot: " + what); }

}  // namespace

size_t xsave_size(const Vm& vm) {
  const int size = vm.check_extension(KVM_CAP_XSAVE2);
  return size > static_cast<int>(kvm_abi::kXsaveBytes) ? static_cast<size_t>(size) : kvm_abi::kXsaveBytes;
}

Status Machine::Impl::save_snapshot(const std::string& path) {
  snapshot::Writer w;
  const MachineShape s = shape();
  w.add(snapshot::SectionKind::machine, 0, s.encode());
  for (const auto& vcpu : vcpus) {
    const auto state = HYPER_TRY(VcpuState::capture(vcpu, kvm.msr_index_list(), s.xsave_size));
    w.add(snapshot::SectionKind::vcpu, vcpu.id(), state.encode());
  }
  snapshot::Encoder chips;
  for (const uint32_t chip : kIrqchips) chips.put(HYPER_TRY(vm.get_irqchip(chip)));
  w.add(snapshot::SectionKind::irqchip, 0, chips.bytes());
  w.add(snapshot::SectionKind::pit, 0, snapshot::Encoder().put(HYPER_TRY(vm.get_pit2())).bytes());
  w.add(snapshot::SectionKind::clock, 0, snapshot::Encoder().put(HYPER_TRY(vm.get_clock())).bytes());
  w.add(snapshot::SectionKind::device, kUartDevice, serial->save());
  for (size_t i = 0; i < windows.size(); ++i)
    w.add(snapshot::SectionKind::device, static_cast<uint32_t>(i + 1), windows[i].transport->save());
  std::vector<std::span<const uint8_t>> ram;
  for (const auto& region : memory.regions()) ram.push_back(region.mapping.bytes());
  w.set_memory(std::move(ram));
  return w.write(path);
}

Status Machine::Impl::check_shape(const MachineShape& saved) const {
  const MachineShape here = shape();
  if (saved.devices != here.devices)
    return bad_snapshot("it was taken with the devices " + device_list(saved.devices) + ", this machine has " +
                        device_list(here.devices) + ": give the same devices, in the same order");
  if (saved.xsave_size < here.xsave_size)
    return bad_snapshot("it was taken on a CPU with a smaller XSAVE area (" + std::to_string(saved.xsave_size) +
                        " bytes, this host's is " + std::to_string(here.xsave_size) + ")");
  return {};
}

Status Machine::Impl::restore(const snapshot::Reader& reader, const MachineShape& saved) {
  HYPER_CHECK(check_shape(saved));
  // Memory first: a device's restore may write to its rings (vsock's reset event).
  const auto ram = reader.memory();
  if (!ram || ram->size != memory.total_size())
    return bad_snapshot("its memory section does not hold " + std::to_string(config.memory_mib) + " MiB");
  uint64_t offset = ram->offset;
  for (const auto& region : memory.regions()) {
    HYPER_CHECK(memory.load_from_fd(region.gpa, reader.fd(), offset, region.size()));
    offset += region.size();
  }
  for (const auto& vcpu : vcpus) {
    const auto bytes = HYPER_TRY(reader.section(snapshot::SectionKind::vcpu, vcpu.id()));
    const auto state = HYPER_TRY(VcpuState::decode(bytes, vcpu.id()));
    // KVM_SET_XSAVE reads this host's XSAVE size from the buffer, whatever its length.
    if (state.xsave.size() < xsave_bytes)
      return bad_snapshot("vCPU " + std::to_string(vcpu.id()) + "'s XSAVE area has " + std::to_string(state.xsave.size()) +
                          " bytes, this host's has " + std::to_string(xsave_bytes));
    HYPER_CHECK(state.apply(vcpu));
  }
  snapshot::Decoder chips(HYPER_TRY(reader.section(snapshot::SectionKind::irqchip)), "irqchip");
  for (const uint32_t chip : kIrqchips) {
    const auto state = HYPER_TRY(chips.get<kvm_irqchip>());
    if (state.chip_id != chip) return bad_snapshot("the irqchip section is out of order");
    HYPER_CHECK(vm.set_irqchip(state));
  }
  HYPER_CHECK(chips.finish());
  snapshot::Decoder pit(HYPER_TRY(reader.section(snapshot::SectionKind::pit)), "pit");
  HYPER_CHECK(vm.set_pit2(HYPER_TRY(pit.get<kvm_pit_state2>())));
  HYPER_CHECK(pit.finish());
  snapshot::Decoder clock(HYPER_TRY(reader.section(snapshot::SectionKind::clock)), "clock");
  HYPER_CHECK(vm.set_clock(HYPER_TRY(clock.get<kvm_clock_data>())));
  HYPER_CHECK(clock.finish());
  HYPER_CHECK(serial->restore(HYPER_TRY(reader.section(snapshot::SectionKind::device, kUartDevice))));
  for (size_t i = 0; i < windows.size(); ++i) {
    const auto index = static_cast<uint32_t>(i + 1);
    HYPER_CHECK(windows[i].transport->restore(HYPER_TRY(reader.section(snapshot::SectionKind::device, index)),
                                              "virtio device " + std::to_string(index)));
  }
  return {};
}

}  // namespace hyper
