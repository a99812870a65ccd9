// Intel MultiProcessor Specification 1.4 tables: how a guest without ACPI learns its
// CPUs, its IOAPIC and how ISA interrupts reach it.
#pragma once

#include <cstdint>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::boot {

// The floating pointer structure followed by the configuration table, laid out to be
// copied to guest-physical `base`.
[[nodiscard]] Result<std::vector<uint8_t>> build_mptable(uint64_t base, uint32_t vcpus);

// Sum of bytes modulo 256: MP structures are valid when their bytes sum to zero.
[[nodiscard]] uint8_t byte_sum(const uint8_t* data, size_t len);

}  // namespace hyper::boot
