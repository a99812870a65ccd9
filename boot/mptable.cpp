#include "boot/mptable.hpp"

#include <cstring>
#include <string>

#include "vmm/layout.hpp"

namespace hyper::boot {
namespace {

#pragma pack(push, 1)
struct FloatingPointer {
  char signature[4];
  uint32_t config_table;
  uint8_t length_paragraphs;
  uint8_t spec_rev;
  uint8_t checksum;
  uint8_t features[5];
};
struct ConfigHeader {
  char signature[4];
  uint16_t base_length;
  uint8_t spec_rev;
  uint8_t checksum;
  char oem_id[8];
  char product_id[12];
  uint32_t oem_table;
  uint16_t oem_table_size;
  uint16_t entry_count;
  uint32_t lapic_address;
  uint16_t extended_length;
  uint8_t extended_checksum;
  uint8_t reserved;
};
struct ProcessorEntry {
  uint8_t type;
  uint8_t lapic_id;
  uint8_t lapic_version;
  uint8_t cpu_flags;
  uint32_t signature;
  uint32_t feature_flags;
  uint32_t reserved[2];
};
struct BusEntry {
  uint8_t type;
  uint8_t bus_id;
  char bus_type[6];
};
struct IoapicEntry {
  uint8_t type;
  uint8_t ioapic_id;
  uint8_t version;
  uint8_t flags;
  uint32_t address;
};
struct InterruptEntry {  // both I/O and local interrupt assignments
  uint8_t type;
  uint8_t interrupt_type;
  uint16_t flags;
  uint8_t source_bus;
  uint8_t source_irq;
  uint8_t dest_id;
  uint8_t dest_pin;
};
#pragma pack(pop)
static_assert(sizeof(FloatingPointer) == 16 && sizeof(ConfigHeader) == 44 && sizeof(ProcessorEntry) == 20);
static_assert(sizeof(BusEntry) == 8 && sizeof(IoapicEntry) == 8 && sizeof(InterruptEntry) == 8);

enum : uint8_t { kProcessor = 0, kBus = 1, kIoapic = 2, kIoInterrupt = 3, kLocalInterrupt = 4 };
enum : uint8_t { kIntVectored = 0, kIntNmi = 1, kIntExtInt = 3 };
constexpr uint8_t kCpuEnabled = 1, kCpuBootstrap = 2;
constexpr uint8_t kLapicVersion = 0x14, kIoapicVersion = 0x11;
constexpr uint32_t kIoapicPins = 24;
constexpr uint8_t kIsaBus = 0;

class TableWriter {
 public:
  template <class T>
  void append(const T& entry) {
    const auto* p = reinterpret_cast<const uint8_t*>(&entry);
    bytes.insert(bytes.end(), p, p + sizeof(T));
  }
  std::vector<uint8_t> bytes;
};

}  // namespace

uint8_t byte_sum(const uint8_t* data, size_t len) {
  uint8_t sum = 0;
  for (size_t i = 0; i < len; ++i) sum = static_cast<uint8_t>(sum + data[i]);
  return sum;
}

Result<std::vector<uint8_t>> build_mptable(uint64_t base, uint32_t vcpus) {
  if (vcpus == 0 || vcpus > layout::kMaxVcpus)
    return make_error(Errc::invalid_argument, "MP table: vCPU count must be 1.." + std::to_string(layout::kMaxVcpus));
  const auto ioapic_id = static_cast<uint8_t>(vcpus);

  TableWriter entries;
  uint16_t count = 0;
  for (uint32_t cpu = 0; cpu < vcpus; ++cpu, ++count) {
    ProcessorEntry e{};
    e.type = kProcessor;
    e.lapic_id = static_cast<uint8_t>(cpu);
    e.lapic_version = kLapicVersion;
    e.cpu_flags = kCpuEnabled | (cpu == 0 ? kCpuBootstrap : 0);
    e.signature = 0x600;       // family 6; Linux reads the real one from CPUID
    e.feature_flags = 0x201;   // FPU and APIC present
    entries.append(e);
  }
  entries.append(BusEntry{kBus, kIsaBus, {'I', 'S', 'A', ' ', ' ', ' '}});
  ++count;
  entries.append(IoapicEntry{kIoapic, ioapic_id, kIoapicVersion, 1, static_cast<uint32_t>(layout::kIoapicStart)});
  ++count;
  // KVM's default routing sends GSI n to IOAPIC pin n, so bus IRQ n maps to pin n.
  for (uint32_t irq = 0; irq < kIoapicPins; ++irq, ++count) {
    entries.append(InterruptEntry{kIoInterrupt, kIntVectored, 0, kIsaBus, static_cast<uint8_t>(irq), ioapic_id,
                                  static_cast<uint8_t>(irq)});
  }
  entries.append(InterruptEntry{kLocalInterrupt, kIntExtInt, 0, kIsaBus, 0, 0xff, 0});
  entries.append(InterruptEntry{kLocalInterrupt, kIntNmi, 0, kIsaBus, 0, 0xff, 1});
  count += 2;

  const uint64_t config_base = base + sizeof(FloatingPointer);
  ConfigHeader header{};
  std::memcpy(header.signature, "PCMP", 4);
  header.base_length = static_cast<uint16_t>(sizeof(ConfigHeader) + entries.bytes.size());
  header.spec_rev = 4;
  std::memcpy(header.oem_id, "HYPER   ", 8);
  std::memcpy(header.product_id, "MICROVM     ", 12);
  header.entry_count = count;
  header.lapic_address = static_cast<uint32_t>(layout::kLapicStart);
  TableWriter config;
  config.append(header);
  config.bytes.insert(config.bytes.end(), entries.bytes.begin(), entries.bytes.end());
  config.bytes[offsetof(ConfigHeader, checksum)] =
      static_cast<uint8_t>(-byte_sum(config.bytes.data(), config.bytes.size()));

  FloatingPointer fp{};
  std::memcpy(fp.signature, "_MP_", 4);
  fp.config_table = static_cast<uint32_t>(config_base);
  fp.length_paragraphs = 1;
  fp.spec_rev = 4;
  fp.checksum = static_cast<uint8_t>(-byte_sum(reinterpret_cast<const uint8_t*>(&fp), sizeof fp));

  TableWriter out;
  out.append(fp);
  out.bytes.insert(out.bytes.end(), config.bytes.begin(), config.bytes.end());
  if (out.bytes.size() > layout::kMpTableMaxSize) return make_error(Errc::invalid_argument, "MP table too large");
  return std::move(out.bytes);
}

}  // namespace hyper::boot
