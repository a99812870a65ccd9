#!/usr/bin/env python3
"""Writes the kernel-image fuzzer's seed inputs: a minimal ELF vmlinux with a PVH note,
a minimal bzImage header and a minimal arm64 Image header, the same shapes the unit
tests build."""
import struct, sys, pathlib

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "seeds/kernel_image")
out.mkdir(parents=True, exist_ok=True)

elf = bytearray(0x400)
ehdr = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
ehdr += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 64, 0, 0, 64, 56, 2, 0, 0, 0)
elf[0:len(ehdr)] = ehdr
load = struct.pack("<IIQQQQQQ", 1, 7, 0x200, 0x1000000, 0x1000000, 0x100, 0x3000, 0x1000)
note = struct.pack("<IIQQQQQQ", 4, 4, 0x300, 0, 0, 12 + 4 + 8, 12 + 4 + 8, 4)
elf[64:64 + 56] = load
elf[120:120 + 56] = note
elf[0x300:0x300 + 24] = struct.pack("<III", 4, 8, 18) + b"Xen\0" + struct.pack("<Q", 0x1000abc)
(out / "pvh-elf").write_bytes(bytes(elf))

bz = bytearray(b"\x90" * 0x5000)
bz[0x1f1] = 4                                       # setup_sects
struct.pack_into("<H", bz, 0x1fe, 0xAA55)           # boot_flag
bz[0x201] = 0x66                                    # header ends at 0x268
struct.pack_into("<IH", bz, 0x202, 0x53726448, 0x020F)  # "HdrS", protocol 2.15
bz[0x211] = 1                                       # loadflags: LOADED_HIGH
struct.pack_into("<I", bz, 0x1f4, (0x1000 - 0xA00) // 16)  # syssize: the payload kept below
struct.pack_into("<I", bz, 0x22c, 0x7FFFFFFF)       # initrd_addr_max
struct.pack_into("<H", bz, 0x236, 1)                # xloadflags: XLF_KERNEL_64
struct.pack_into("<I", bz, 0x238, 2047)             # cmdline_size
struct.pack_into("<Q", bz, 0x258, 0x1000000)        # pref_address
struct.pack_into("<I", bz, 0x260, 0x800000)         # init_size
(out / "bzimage").write_bytes(bytes(bz[:0x1000]))   # header plus a little payload

arm = bytearray(b"\x00" * 0x1000)
struct.pack_into("<QQQ", arm, 8, 0, 0x2000000, 0xa)  # text_offset, image_size, flags: LE, 4K pages
struct.pack_into("<I", arm, 0x38, 0x644D5241)        # "ARM\x64"
(out / "arm64-image").write_bytes(bytes(arm))
