/* The well-behaved driver phase: every device is reset (which must bring it back from
   whatever the attacks left) and driven properly. Rings and buffers lie in the driver
   area (0x200000-0x240000), the only other memory a device may write. */
#include "virtio.h"

#define POLLS 200000u

/* Byte i of the disk's sector 0, as tests/hostile/hostile.sh writes it. */
static u8 disk_byte(u32 i) { return (u8)(i * 7 + 3); }

static void ready(const struct vdev* d, struct ring* rings, u32 base) {
  (void)vdev_negotiate(d, F_VERSION_1);
  for (u32 q = 0; q < d->queues; ++q) {
    ring_init(&rings[q], base + q * 0x3000, 8);
    ring_attach(d, q, &rings[q]);
  }
  vdev_driver_ok(d);
  if (vr(d, R_STATUS) != (S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK))
    fail_at(CHECK_ACTIVATE, "a reset device refused valid queues", d->base, vr(d, R_STATUS));
}

static u8 blk_read(const struct vdev* d, struct ring* r, u32 sector, u32 buf, int* len) {
  u32* hdr = (u32*)(uptr)0x20c000;
  volatile u8* status = (volatile u8*)(uptr)0x20c400;
  hdr[0] = 0;  // VIRTIO_BLK_T_IN
  hdr[1] = 0;
  hdr[2] = sector;
  hdr[3] = 0;
  *status = 0xee;
  struct desc* t = ring_desc(r);
  t[0] = (struct desc){0x20c000, 16, D_NEXT, 1};
  t[1] = (struct desc){buf, 512, D_WRITE | D_NEXT, 2};
  t[2] = (struct desc){0x20c400, 1, D_WRITE, 0};
  ring_post(d, 0, r, 0);
  *len = ring_wait_used(d, r, POLLS);
  return *status;
}

static void drive_blk(const struct vdev* d) {
  struct ring r;
  ready(d, &r, 0x200000);
  const u32 buf = 0x20d000;
  memset((void*)(uptr)buf, 0, 512);
  int len;
  const u8 status = blk_read(d, &r, 0, buf, &len);
  if (len != 513 || status != 0) fail_at(CHECK_BLK, "reading sector 0 failed (status, length)", status, (u32)len);
  for (u32 i = 0; i < 512; ++i)
    if (((const u8*)(uptr)buf)[i] != disk_byte(i)) fail_at(CHECK_BLK, "sector 0 holds the wrong bytes", i, ((const u8*)(uptr)buf)[i]);
  const u32 capacity = vr(d, R_CONFIG);  // sectors (low half; the test's disk is small)
  if (blk_read(d, &r, capacity, buf, &len) != 1) fail_at(CHECK_BLK, "reading past the end did not fail", capacity, (u32)len);
  vdev_reset(d);
}

static void drive_rng(const struct vdev* d) {
  struct ring r;
  ready(d, &r, 0x210000);
  u8* buf = (u8*)(uptr)0x21c000;
  memset(buf, 0, 64);
  ring_desc(&r)[0] = (struct desc){0x21c000, 64, D_WRITE, 0};
  ring_post(d, 0, &r, 0);
  const int len = ring_wait_used(d, &r, POLLS);
  if (len <= 0 || len > 64) fail_at(CHECK_RNG, "virtio-rng returned no bytes", d->base, (u32)len);
  u32 nonzero = 0;
  for (int i = 0; i < len; ++i) nonzero += buf[i] != 0;
  if (nonzero == 0) fail_at(CHECK_RNG, "virtio-rng returned only zeros", d->base, (u32)len);
  vdev_reset(d);
}

/* A connection request to a host port nobody listens on: the device must answer RST. */
static void drive_vsock(const struct vdev* d) {
  struct ring r[3];
  if (d->queues != 3) fail_at(CHECK_VSOCK, "virtio-vsock does not have 3 queues", d->base, d->queues);
  ready(d, r, 0x220000);
  const u32 guest_cid = vr(d, R_CONFIG);
  u8* rx = (u8*)(uptr)0x22c000;
  memset(rx, 0, 4 * 256);
  for (u16 k = 0; k < 4; ++k) {
    ring_desc(&r[0])[k] = (struct desc){0x22c000 + 256u * k, 256, D_WRITE, 0};
    ring_post(d, 0, &r[0], k);
  }
  u32* pkt = (u32*)(uptr)0x22d000;
  memset(pkt, 0, 44);
  pkt[0] = guest_cid;   // src_cid (le64)
  pkt[2] = 2;           // dst_cid: the host
  pkt[4] = 50000;       // src_port
  pkt[5] = 4321;        // dst_port: nobody listens at <socket>_4321
  pkt[7] = 1 | 1 << 16; // type STREAM, op REQUEST
  pkt[9] = 65536;       // buf_alloc
  ring_desc(&r[1])[0] = (struct desc){0x22d000, 44, 0, 0};
  ring_post(d, 1, &r[1], 0);
  if (ring_wait_used(d, &r[1], POLLS) < 0) fail_at(CHECK_VSOCK, "the request was not consumed", d->base, 0);
  const int len = ring_wait_used(d, &r[0], POLLS);
  const u32* reply = (const u32*)(uptr)(0x22c000 + 256u * ((u32*)ring_used(&r[0]))[1]);
  if (len < 44) fail_at(CHECK_VSOCK, "no reply to a connection request", d->base, (u32)len);
  if ((reply[7] >> 16) != 3 || reply[4] != 4321 || reply[5] != 50000 || reply[0] != 2)
    fail_at(CHECK_VSOCK, "the reply is not the RST it should be", reply[7], reply[5]);
  vdev_reset(d);
}

/* One broadcast frame out of the tap. */
static void drive_net(const struct vdev* d) {
  struct ring r[2];
  ready(d, r, 0x230000);
  u8* frame = (u8*)(uptr)0x23c000;
  memset(frame, 0, 12 + 60);
  memset(frame + 12, 0xff, 6);  // to broadcast
  frame[12 + 6] = 0x02;         // from a locally administered address
  frame[12 + 12] = 0x88;        // EtherType 0x88b5: local experimental
  frame[12 + 13] = 0xb5;
  memcpy(frame + 12 + 14, "hyper hostile guest", 19);
  ring_desc(&r[1])[0] = (struct desc){0x23c000, 12 + 60, 0, 0};
  ring_post(d, 1, &r[1], 0);
  if (ring_wait_used(d, &r[1], POLLS) < 0) fail_at(CHECK_NET, "the TX frame was not consumed", d->base, 0);
  if (vr(d, R_STATUS) & S_NEEDS_RESET) fail_at(CHECK_NET, "a valid TX frame broke the device", d->base, 0);
  vdev_reset(d);
}

void drive_devices(void) {
  for (u32 i = 0; i < device_count; ++i) {
    const struct vdev* d = &devices[i];
    switch (d->id) {
      case ID_BLK: drive_blk(d); break;
      case ID_RNG: drive_rng(d); break;
      case ID_VSOCK: drive_vsock(d); break;
      case ID_NET: drive_net(d); break;
      default: fail_at(CHECK_ACTIVATE, "an unknown device", d->base, d->id);
    }
  }
}
