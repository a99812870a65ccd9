#!/usr/bin/env python3
"""Writes the snapshot-state fuzzer's seeds: one well-formed section per decoder, behind
the byte that picks it (0 a vCPU, 1 the UART, 2 a virtio-mmio transport)."""
import struct, sys, pathlib

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "seeds/snapshot_state")
out.mkdir(parents=True, exist_ok=True)

def blob(data):
    return struct.pack("<I", len(data)) + data

# x86-64 KVM structs, by size: mp_state, regs, sregs, XSAVE area, xcrs, debugregs, lapic,
# MSRs (index, reserved, data), events.
msrs = struct.pack("<IIQ", 0x10, 0, 1234) + struct.pack("<IIQ", 0xc0000080, 0, 0xd01)
vcpu = bytes(4) + bytes(144) + bytes(312) + blob(bytes(4096)) + bytes(392) + bytes(128) + bytes(1024) + blob(msrs) + bytes(64)
(out / "vcpu").write_bytes(b"\x00" + vcpu)

uart = bytes([0x01, 0x03, 0x08, 0x5c, 0x01, 0x0c, 0x00, 0x01, 0x00]) + blob(b"ok")
(out / "uart").write_bytes(b"\x01" + uart)

# An rng (type 4, one queue) active at DRIVER_OK with its rings at 0x1000/0x2000/0x3000.
transport = struct.pack("<IIIIIIQII", 4, 1, 0x0f, 0, 0, 0, 1 << 32, 0, 0)
transport += struct.pack("<HBQQQ", 8, 1, 0x1000, 0x2000, 0x3000)
transport += blob(struct.pack("<HHH", 2, 2, 1))
(out / "transport").write_bytes(b"\x02" + transport)
