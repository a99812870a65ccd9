/* The attacks: random register traffic, illegal queues, hostile descriptor chains,
   the unclaimed MMIO hole and I/O ports, exit storms, and issue 18's sequence. Only the
   attack area (0x300000-0x310000) is ever named to a device; guest.c checks the rest. */
#include "virtio.h"

#define ATTACK_RING(q) (0x300000u + (q) * 0x4000u)
#define ATTACK_BUF 0x30f000u
#define OUTSIDE_RAM 0x7fff0000u  // below the MMIO hole, far above the guest's RAM

/* ---- random register traffic ---- */

static void random_access(const struct vdev* d) {
  const u32 width = 1u << (rnd() % 4);
  u32 offset = rnd() % MMIO_WINDOW;
  if (rnd() % 4) offset &= ~(width - 1);  // mostly aligned, sometimes not
  const u32 a = d->base + offset;
  const u32 v = rnd();
  if (rnd() % 2) {
    switch (width) {
      case 1: (void)mmio_r8(a); break;
      case 2: (void)mmio_r16(a); break;
      case 4: (void)mmio_r32(a); break;
      default: (void)mmio_r64(a); break;
    }
    return;
  }
  switch (width) {
    case 1: mmio_w8(a, (u8)v); break;
    case 2: mmio_w16(a, (u16)v); break;
    case 4: mmio_w32(a, v); break;
    default: mmio_w64(a, (u64)v << 32 | rnd()); break;
  }
}

void attack_registers(u32 rounds) {
  for (u32 i = 0; i < device_count; ++i) {
    const struct vdev* d = &devices[i];
    for (u32 half = 0; half < 2; ++half) {  // from reset, then from FEATURES_OK
      if (half) (void)vdev_negotiate(d, F_VERSION_1); else vdev_reset(d);
      for (u32 n = 0; n < rounds / 2; ++n) random_access(d);
      if (vr(d, R_MAGIC) != 0x74726976u) fail_at(CHECK_MAGIC, "the window stopped answering", d->base, vr(d, R_MAGIC));
      vdev_reset(d);
    }
  }
}

/* ---- illegal queues: every variant must leave the device in NEEDS_RESET ---- */

struct bad_queue {
  u32 size;
  u64 desc, avail, used;
};
static const struct bad_queue bad_queues[] = {
    {0xffff, 0xfffffffffffff000ULL, 0xfffffffffffff800ULL, 0xfffffffffffffc00ULL},  // wraps the address space
    {0xffff, OUTSIDE_RAM, OUTSIDE_RAM + 0x1000, OUTSIDE_RAM + 0x2000},                // outside RAM
    {8, 0xffffffff00300000ULL, 0xffffffff00301000ULL, 0xffffffff00302000ULL},         // addr_hi 0xffffffff
    {8, 0xd0000000ULL, 0xd0000100ULL, 0xd0000200ULL},                                 // on a device window
    {8, 0x300008, 0x301001, 0x302002},                                                // misaligned
    {3, 0x300000, 0x301000, 0x302000},                                                // not a power of two
    {0, 0x300000, 0x301000, 0x302000},                                                // empty
    {0x10000, 0x300000, 0x301000, 0x302000},                                          // too large
    {8, 0x300000, 0x301000, 0x8000000ULL - 0x40},                                     // used ring crosses the end of RAM
};

void attack_queues(void) {
  for (u32 i = 0; i < device_count; ++i) {
    const struct vdev* d = &devices[i];
    for (u32 v = 0; v < sizeof bad_queues / sizeof bad_queues[0]; ++v) {
      const struct bad_queue* b = &bad_queues[v];
      (void)vdev_negotiate(d, F_VERSION_1);
      for (u32 q = 0; q < d->queues; ++q) vdev_queue(d, q, b->size, b->desc, b->avail, b->used);
      vdev_driver_ok(d);
      if (!(vr(d, R_STATUS) & S_NEEDS_RESET)) fail_at(CHECK_ACTIVATE, "an illegal queue was accepted", d->base, v);
      for (u32 q = 0; q < d->queues; ++q) vw(d, R_QUEUE_NOTIFY, q);
      vdev_reset(d);
    }
  }
}

/* ---- hostile descriptor chains on valid rings ---- */

enum { CHAINS = 16 };

/* Writes variant v's descriptors into r and returns the avail index to publish. */
static u16 hostile_chain(struct ring* r, u32 v) {
  struct desc* t = ring_desc(r);
  struct desc* ind = (struct desc*)(uptr)ATTACK_BUF;
  memset(ind, 0, 0x1000);
  const u16 writable = D_WRITE;
  switch (v) {
    case 0: t[0] = (struct desc){ATTACK_BUF, 16, D_NEXT, 1}; t[1] = (struct desc){ATTACK_BUF, 16, D_NEXT, 0}; break;  // loop
    case 1: t[0] = (struct desc){0xffffffff00001000ULL, 16, writable, 0}; break;              // addr_hi 0xffffffff
    case 2: t[0] = (struct desc){OUTSIDE_RAM, 0x1000, writable, 0}; break;                     // outside RAM
    case 3: t[0] = (struct desc){ATTACK_BUF, 0xffffffffu, writable, 0}; break;                 // len 0xffffffff
    case 4: t[0] = (struct desc){0xfffffffffffff000ULL, 0x2000, writable, 0}; break;           // wraps to page 1
    case 5: t[0] = (struct desc){0x8000000ULL - 8, 16, writable, 0}; break;                    // crosses the end of RAM
    case 6:                                                                                    // nested indirect
      t[0] = (struct desc){ATTACK_BUF, 32, D_INDIRECT, 0};
      ind[0] = (struct desc){ATTACK_BUF + 0x100, 32, D_INDIRECT, 0};
      break;
    case 7: t[0] = (struct desc){ATTACK_BUF, 0xfffffff0u, D_INDIRECT, 0}; break;               // huge indirect table
    case 8:                                                                                    // misaligned indirect table
      t[0] = (struct desc){ATTACK_BUF + 4, 32, D_INDIRECT, 0};
      ind = (struct desc*)(uptr)(ATTACK_BUF + 4);
      ind[0] = (struct desc){OUTSIDE_RAM, 64, writable | D_NEXT, 1};
      ind[1] = (struct desc){0xffffffffffffff00ULL, 0x1000, writable, 0};
      break;
    case 9: t[0] = (struct desc){OUTSIDE_RAM, 64, D_INDIRECT, 0}; break;                       // indirect outside RAM
    case 10: t[0] = (struct desc){0xfffffffffffffff0ULL, 32, D_INDIRECT, 0}; break;            // indirect table wraps
    case 11:                                                                                   // indirect loop
      t[0] = (struct desc){ATTACK_BUF, 32, D_INDIRECT, 0};
      ind[0] = (struct desc){ATTACK_BUF + 0x200, 16, D_NEXT, 1};
      ind[1] = (struct desc){ATTACK_BUF + 0x200, 16, D_NEXT, 0};
      break;
    case 12: t[0] = (struct desc){ATTACK_BUF, 16, D_NEXT, 200}; break;                         // next out of range
    case 13:                                                                                   // readable after writable
      t[0] = (struct desc){ATTACK_BUF, 16, writable | D_NEXT, 1};
      t[1] = (struct desc){ATTACK_BUF + 16, 16, D_NEXT, 2};
      t[2] = (struct desc){ATTACK_BUF + 32, 0, writable, 0};
      break;
    case 14: ring_avail(r)[2] = 0xffff; return 1;                                              // head out of range
    default:                                                                                   // avail index far ahead
      t[0] = (struct desc){ATTACK_BUF, 16, writable, 0};
      return 0x8000;
  }
  ring_avail(r)[2] = 0;
  return 1;
}

static void settle(const struct vdev* d) {
  for (u32 i = 0; i < 300 && !(vr(d, R_STATUS) & S_NEEDS_RESET); ++i) {}
}

void attack_descriptors(void) {
  struct ring rings[8];
  for (u32 i = 0; i < device_count; ++i) {
    const struct vdev* d = &devices[i];
    for (u32 q = 0; q < d->queues; ++q) {
      for (u32 v = 0; v < CHAINS; ++v) {
        (void)vdev_negotiate(d, F_VERSION_1 | F_INDIRECT);
        for (u32 k = 0; k < d->queues; ++k) {
          ring_init(&rings[k], ATTACK_RING(k), 8);
          ring_attach(d, k, &rings[k]);
        }
        vdev_driver_ok(d);
        const u16 idx = hostile_chain(&rings[q], v);
        fence();
        ring_avail(&rings[q])[1] = idx;
        fence();
        vw(d, R_QUEUE_NOTIFY, q);
        settle(d);
        vdev_reset(d);
      }
      /* The used ring on top of the descriptor table: the device may write there (the
         driver named it), and nowhere else. */
      (void)vdev_negotiate(d, F_VERSION_1);
      for (u32 k = 0; k < d->queues; ++k) {
        ring_init(&rings[k], ATTACK_RING(k), 8);
        vdev_queue(d, k, 8, rings[k].base, rings[k].base + 0x1000, k == q ? rings[k].base : rings[k].base + 0x2000);
      }
      vdev_driver_ok(d);
      ring_desc(&rings[q])[0] = (struct desc){ATTACK_BUF, 64, D_WRITE, 0};
      ring_post(d, q, &rings[q], 0);
      settle(d);
      vdev_reset(d);
    }
  }
}

/* ---- the unclaimed MMIO hole: reads are 0, writes are dropped ---- */

static void probe_unclaimed(u32 a) {
  if (mmio_r8(a) != 0 || mmio_r16(a) != 0 || mmio_r32(a) != 0 || mmio_r64(a) != 0)
    fail_at(CHECK_HOLE, "an unclaimed MMIO address read non-zero", a, mmio_r32(a));
  mmio_w8(a, (u8)rnd());
  mmio_w16(a, (u16)rnd());
  mmio_w32(a, rnd());
  mmio_w64(a, (u64)rnd() << 32 | rnd());
  if (mmio_r32(a) != 0) fail_at(CHECK_HOLE, "a write to an unclaimed MMIO address stuck", a, mmio_r32(a));
}

void attack_hole(void) {
  static const u32 fixed[] = {0x08000000, 0x7fff0000, 0xcffff000, 0xd0100000, 0xdffffff8,
                              0xe0000000, 0xfe000000, 0xfebffff8, 0xfed00000, 0xfff00000, 0xfffffff8};
  const u32 after = devices[device_count - 1].base + MMIO_WINDOW;
  for (u32 p = 0; p < 16; ++p) probe_unclaimed(after + p * MMIO_WINDOW + (rnd() % (MMIO_WINDOW / 8)) * 8);
  for (u32 i = 0; i < sizeof fixed / sizeof fixed[0]; ++i) probe_unclaimed(fixed[i]);
  /* Accesses that straddle the end of a window belong to no device. */
  for (u32 i = 0; i < device_count; ++i) {
    const u32 edge = devices[i].base + MMIO_WINDOW;
    if ((u32)mmio_r64(edge - 4) != 0 && i + 1 == device_count) fail_at(CHECK_HOLE, "a straddling read", edge - 4, 1);
    mmio_w32(edge - 2, rnd());
    mmio_w64(edge - 4, (u64)rnd() << 32 | rnd());
  }
  for (u32 i = 0; i < device_count; ++i)
    if (vr(&devices[i], R_MAGIC) != 0x74726976u) fail_at(CHECK_MAGIC, "a window stopped answering", devices[i].base, 0);
}

/* ---- unclaimed I/O ports ---- */

/* Ports a device claims: our serial, i8042, exit and boot-timer ports, and KVM's own
   PIC, PIT and ELCR. Only these may read other than all ones. */
static int claimed(u32 port) {
  return (port >= 0x3f8 && port <= 0x3ff) || port == 0x60 || port == 0x64 || port == EXIT_PORT ||
         port == BOOT_TIMER_PORT || port == 0x20 || port == 0x21 || port == 0xa0 || port == 0xa1 ||
         (port >= 0x40 && port <= 0x43) || port == 0x61 || port == 0x4d0 || port == 0x4d1;
}

/* Never written: the console (its output is checked byte for byte), the exit and
   boot-timer ports and the i8042 (0xfe on 0x64 resets the machine). */
static int spared(u32 port) {
  return (port >= 0x3f8 && port <= 0x3ff) || port == EXIT_PORT || port == BOOT_TIMER_PORT || port == 0x64;
}

static int range_is(u32 port, u32 width, int (*pred)(u32)) {
  for (u32 p = port; p < port + width; ++p)
    if (pred(p)) return 1;
  return 0;
}

static void flood_port(u32 port, u32 width, int check_reads) {
  if (port + width > 0x10000) return;
  if (check_reads && !range_is(port, width, claimed)) {
    const u32 v = width == 1 ? inb((u16)port) : width == 2 ? inw((u16)port) : inl((u16)port);
    const u32 ones = width == 4 ? 0xffffffffu : (1u << (8 * width)) - 1;
    if (v != ones) fail_at(CHECK_PORTS, "an unclaimed port read other than all ones", port, v);
  } else if (!range_is(port, width, spared)) {
    (void)(width == 1 ? inb((u16)port) : width == 2 ? inw((u16)port) : inl((u16)port));
  }
  if (range_is(port, width, spared)) return;
  const u32 v = rnd();
  if (width == 1) outb((u16)port, (u8)v);
  else if (width == 2) outw((u16)port, (u16)v);
  else outl((u16)port, v);
}

void attack_ports(void) {
  for (u32 port = 0; port < 0x10000; ++port) flood_port(port, 1u << (rnd() % 3), 1);
}

/* ---- exit storms ---- */

void attack_storm(u32 exits) {
  const struct vdev* d = &devices[0];
  for (u32 i = 0; i < exits; ++i) {
    if (inb(0x80) != 0xff) fail_at(CHECK_STORM, "port 0x80 read other than 0xff during the storm", i, 0);
    if (vr(d, R_MAGIC) != 0x74726976u) fail_at(CHECK_STORM, "the magic changed during the storm", i, 0);
    if (mmio_r32(0xfe000000u) != 0) fail_at(CHECK_STORM, "unclaimed MMIO read non-zero during the storm", i, 0);
  }
}

/* ---- issue 18's sequence ---- */

void issue18_windows(void) {
  struct ring r;
  for (u32 i = 0; i < device_count; ++i) {
    const struct vdev* d = &devices[i];
    (void)vdev_negotiate(d, F_VERSION_1);
    for (u32 q = 0; q < d->queues; ++q) {
      vw(d, R_QUEUE_SEL, q);
      vw(d, R_QUEUE_NUM, 0xffff);
      vdev_queue(d, q, 0xffff, OUTSIDE_RAM, OUTSIDE_RAM + 0x1000, OUTSIDE_RAM + 0x2000);
    }
    for (u32 q = 0; q < d->queues; ++q) {
      ring_init(&r, ATTACK_RING(q), 8);
      struct desc* t = ring_desc(&r);
      t[0] = (struct desc){ATTACK_BUF, 0xffffffffu, D_NEXT, 1};
      t[1] = (struct desc){0xffffffff00001000ULL, 512, D_NEXT | D_WRITE, 2};
      t[2] = (struct desc){OUTSIDE_RAM, 0xffffffffu, D_NEXT | D_WRITE, 0};  // back to 0: a loop
      for (u16 k = 3; k < 8; ++k) t[k] = (struct desc){ATTACK_BUF, 0xffffffffu, D_NEXT, (u16)(k == 7 ? 3 : k + 1)};
      for (u16 k = 0; k < 8; ++k) ring_avail(&r)[2 + k] = k;
      ring_avail(&r)[1] = 0x9000;  // far ahead of the device's 0
      vdev_queue(d, q, 8, r.base, r.base + 0x1000, r.base + 0x2000);
    }
    vdev_driver_ok(d);
    for (u32 q = 0; q < d->queues; ++q) vw(d, R_QUEUE_NOTIFY, q);
    for (u32 n = 0; n < 3000; ++n) {
      const u32 a = d->base + rnd() % MMIO_WINDOW;
      const u32 v = rnd();
      switch (rnd() % 3) {
        case 0: mmio_w8(a, (u8)v); break;
        case 1: mmio_w16(a, (u16)v); break;
        default: mmio_w32(a, v); break;
      }
      const u32 r = d->base + rnd() % MMIO_WINDOW;
      switch (rnd() % 3) {
        case 0: (void)mmio_r8(r); break;
        case 1: (void)mmio_r16(r); break;
        default: (void)mmio_r32(r); break;
      }
    }
  }
}

/* The issue's "unclaimed" ports: every port no device of the VMM claims, KVM's own
   PIC, PIT and ELCR included. */
static int vmm_claimed(u32 port) {
  return (port >= 0x3f8 && port <= 0x3ff) || port == 0x60 || port == 0x64 || port == EXIT_PORT ||
         port == BOOT_TIMER_PORT;
}

void issue18_ports(void) {
  for (u32 port = 0; port < 0x10000; ++port)
    if (!vmm_claimed(port)) flood_port(port, 1, 0);
}
