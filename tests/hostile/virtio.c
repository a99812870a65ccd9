/* The virtio-mmio driver helpers (virtio 1.x, section 4.2.3). */
#include "virtio.h"

void vdev_reset(const struct vdev* d) {
  vw(d, R_STATUS, 0);
  if (vr(d, R_STATUS) != 0) fail_at(CHECK_RESET, "a reset did not clear the device status", d->base, vr(d, R_STATUS));
}

u64 vdev_negotiate(const struct vdev* d, u64 want) {
  vdev_reset(d);
  vw(d, R_STATUS, S_ACK);
  vw(d, R_STATUS, S_ACK | S_DRIVER);
  vw(d, R_DEVICE_FEATURES_SEL, 0);
  u64 offered = vr(d, R_DEVICE_FEATURES);
  vw(d, R_DEVICE_FEATURES_SEL, 1);
  offered |= (u64)vr(d, R_DEVICE_FEATURES) << 32;
  const u64 accepted = offered & want;
  vw(d, R_DRIVER_FEATURES_SEL, 0);
  vw(d, R_DRIVER_FEATURES, (u32)accepted);
  vw(d, R_DRIVER_FEATURES_SEL, 1);
  vw(d, R_DRIVER_FEATURES, (u32)(accepted >> 32));
  vw(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
  const u32 status = vr(d, R_STATUS);
  if (status != (S_ACK | S_DRIVER | S_FEATURES_OK)) fail_at(CHECK_NEGOTIATE, "FEATURES_OK was refused", d->base, status);
  return accepted;
}

void vdev_queue(const struct vdev* d, u32 q, u32 size, u64 desc, u64 avail, u64 used) {
  vw(d, R_QUEUE_SEL, q);
  vw(d, R_QUEUE_NUM, size);
  vw(d, R_QUEUE_DESC_LO, (u32)desc);
  vw(d, R_QUEUE_DESC_HI, (u32)(desc >> 32));
  vw(d, R_QUEUE_DRIVER_LO, (u32)avail);
  vw(d, R_QUEUE_DRIVER_HI, (u32)(avail >> 32));
  vw(d, R_QUEUE_DEVICE_LO, (u32)used);
  vw(d, R_QUEUE_DEVICE_HI, (u32)(used >> 32));
  vw(d, R_QUEUE_READY, 1);
}

void vdev_driver_ok(const struct vdev* d) { vw(d, R_STATUS, vr(d, R_STATUS) | S_DRIVER_OK); }

int vdev_wait_needs_reset(const struct vdev* d, u32 polls) {
  for (u32 i = 0; i < polls; ++i)
    if (vr(d, R_STATUS) & S_NEEDS_RESET) return 1;
  return 0;
}

void ring_init(struct ring* r, u32 base, u16 size) {
  r->base = base;
  r->size = size;
  r->avail_idx = 0;
  r->used_seen = 0;
  memset((void*)(uptr)base, 0, 0x3000);
}

void ring_attach(const struct vdev* d, u32 q, const struct ring* r) {
  vdev_queue(d, q, r->size, r->base, r->base + 0x1000, r->base + 0x2000);
}

void ring_post(const struct vdev* d, u32 q, struct ring* r, u16 head) {
  volatile u16* avail = ring_avail(r);
  avail[2 + r->avail_idx % r->size] = head;
  fence();
  avail[1] = ++r->avail_idx;
  fence();
  vw(d, R_QUEUE_NOTIFY, q);
}

int ring_wait_used(const struct vdev* d, struct ring* r, u32 polls) {
  volatile u32* used = ring_used(r);
  for (u32 i = 0; i < polls; ++i) {
    const u16 idx = (u16)(used[0] >> 16);
    if (idx != r->used_seen) {
      fence();
      const u32 len = used[1 + 2 * (r->used_seen % r->size) + 1];
      ++r->used_seen;
      return (int)len;
    }
    (void)vr(d, R_INTERRUPT_STATUS);  // an exit: lets the device's thread run on a busy host
  }
  return -1;
}
