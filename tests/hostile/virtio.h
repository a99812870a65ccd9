/* A minimal virtio-mmio (version 2) driver: enough to negotiate, set up split queues
   and post chains, used by both the attacks and the well-behaved phase. */
#pragma once

#include "hw.h"

enum {
  R_MAGIC = 0x000, R_VERSION = 0x004, R_DEVICE_ID = 0x008, R_DEVICE_FEATURES = 0x010,
  R_DEVICE_FEATURES_SEL = 0x014, R_DRIVER_FEATURES = 0x020, R_DRIVER_FEATURES_SEL = 0x024,
  R_QUEUE_SEL = 0x030, R_QUEUE_NUM_MAX = 0x034, R_QUEUE_NUM = 0x038, R_QUEUE_READY = 0x044,
  R_QUEUE_NOTIFY = 0x050, R_INTERRUPT_STATUS = 0x060, R_INTERRUPT_ACK = 0x064, R_STATUS = 0x070,
  R_QUEUE_DESC_LO = 0x080, R_QUEUE_DESC_HI = 0x084, R_QUEUE_DRIVER_LO = 0x090, R_QUEUE_DRIVER_HI = 0x094,
  R_QUEUE_DEVICE_LO = 0x0a0, R_QUEUE_DEVICE_HI = 0x0a4, R_CONFIG_GENERATION = 0x0fc, R_CONFIG = 0x100,
};
enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8, S_NEEDS_RESET = 64, S_FAILED = 128 };
enum { D_NEXT = 1, D_WRITE = 2, D_INDIRECT = 4 };
#define F_INDIRECT (1ULL << 28)
#define F_EVENT_IDX (1ULL << 29)
#define F_VERSION_1 (1ULL << 32)
enum { ID_NET = 1, ID_BLK = 2, ID_RNG = 4, ID_VSOCK = 19 };
#define MAX_DEVICES 8
#define MMIO_WINDOW 0x1000u

struct desc {
  u64 addr;
  u32 len;
  u16 flags;
  u16 next;
};
struct vdev {
  u32 base;
  u32 id;
  u32 queues;
};
/* A split ring at three consecutive pages: descriptors, available, used. */
struct ring {
  u32 base;
  u16 size;
  u16 avail_idx;
  u16 used_seen;
};

extern struct vdev devices[MAX_DEVICES];
extern u32 device_count;

static inline u32 vr(const struct vdev* d, u32 off) { return mmio_r32(d->base + off); }
static inline void vw(const struct vdev* d, u32 off, u32 v) { mmio_w32(d->base + off, v); }
const char* device_name(u32 id);

/* Resets the device and checks that it reads back as reset. */
void vdev_reset(const struct vdev* d);
/* Resets, then ACKNOWLEDGE, DRIVER, accepts `want` & offered, FEATURES_OK. Returns the
   accepted features; fails check CHECK_NEGOTIATE when the device refuses. */
u64 vdev_negotiate(const struct vdev* d, u64 want);
/* Writes one queue's registers; `size` and addresses as given, however illegal. */
void vdev_queue(const struct vdev* d, u32 q, u32 size, u64 desc, u64 avail, u64 used);
void vdev_driver_ok(const struct vdev* d);
/* Waits (bounded) until the status shows NEEDS_RESET; returns whether it did. */
int vdev_wait_needs_reset(const struct vdev* d, u32 polls);

void ring_init(struct ring* r, u32 base, u16 size);
static inline struct desc* ring_desc(const struct ring* r) { return (struct desc*)(uptr)r->base; }
static inline volatile u16* ring_avail(const struct ring* r) { return (volatile u16*)(uptr)(r->base + 0x1000); }
static inline volatile u32* ring_used(const struct ring* r) { return (volatile u32*)(uptr)(r->base + 0x2000); }
void ring_attach(const struct vdev* d, u32 q, const struct ring* r);
/* Makes chain `head` available and notifies queue q. */
void ring_post(const struct vdev* d, u32 q, struct ring* r, u16 head);
/* Waits (bounded) for the next used element; returns its length or -1 on timeout. */
int ring_wait_used(const struct vdev* d, struct ring* r, u32 polls);

/* The phases (guest.c calls them in the order of the command line's phases=). */
void attack_registers(u32 rounds);
void attack_queues(void);
void attack_descriptors(void);
void attack_hole(void);
void attack_ports(void);
void attack_storm(u32 exits);
void issue18_windows(void);
void issue18_ports(void);
void drive_devices(void);
