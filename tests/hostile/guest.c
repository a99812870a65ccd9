/* The hostile guest's main: reads its command line (seed, phases, the virtio-mmio
   windows), fills every page it does not use with a canary, runs the phases, drives
   the devices properly, and checks that no canary changed and its own code is intact. */
#include "hw.h"
#include "virtio.h"

extern char image_start[], image_code_end[], image_end[];

struct vdev devices[MAX_DEVICES];
u32 device_count;

/* Memory the driver names to devices: rings and buffers (see virtio.h users). */
#define DRIVER_AREA_START 0x200000u
#define DRIVER_AREA_END 0x240000u
#define ATTACK_AREA_START 0x300000u
#define ATTACK_AREA_END 0x310000u

static char cmdline[1024];
static char phases[64] = "rqdhpsg";
static u32 seed = 1;
static u32 ram_top;

/* ---- output, failure, PRNG, memory functions ---- */

/* hostile.outs=1 prints with string I/O (rep outsb): one exit carries a whole line. */
static u32 use_outs;

void put(const char* s) {
  if (!use_outs) {
    for (; *s; ++s) outb(COM1, (u8)*s);
    return;
  }
  u32 n = 0;
  while (s[n]) ++n;
  __asm__ volatile("rep outsb" : "+S"(s), "+c"(n) : "d"(COM1) : "memory");
}

void put_hex(u32 v) {
  char buf[11] = "0x";
  for (int i = 0; i < 8; ++i) buf[2 + i] = "0123456789abcdef"[(v >> (28 - 4 * i)) & 15];
  buf[10] = 0;
  put(buf);
}

void put_dec(u32 v) {
  char buf[11];
  int i = 10;
  buf[i] = 0;
  do {
    buf[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  put(buf + i);
}

void fail(u32 check, const char* what) {
  put("hostile: FAIL ");
  put(what);
  put("\n");
  outb(EXIT_PORT, (u8)check);
  for (;;) __asm__ volatile("hlt");
}

void fail_at(u32 check, const char* what, u32 where, u32 value) {
  put("hostile: FAIL ");
  put(what);
  put(" at ");
  put_hex(where);
  put(": ");
  put_hex(value);
  put("\n");
  outb(EXIT_PORT, (u8)check);
  for (;;) __asm__ volatile("hlt");
}

static u32 prng_state = 1;
void rnd_seed(u32 s) { prng_state = s ? s : 0x9e3779b9u; }
u32 rnd(void) {
  u32 x = prng_state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return prng_state = x;
}

void* memset(void* d, int c, unsigned n) {
  u8* p = d;
  while (n--) *p++ = (u8)c;
  return d;
}
void* memcpy(void* d, const void* s, unsigned n) {
  u8* p = d;
  const u8* q = s;
  while (n--) *p++ = *q++;
  return d;
}
int memcmp(const void* a, const void* b, unsigned n) {
  const u8 *p = a, *q = b;
  for (; n; --n, ++p, ++q)
    if (*p != *q) return *p - *q;
  return 0;
}

/* ---- command line ---- */

static int starts_with(const char* s, const char* prefix) {
  while (*prefix)
    if (*s++ != *prefix++) return 0;
  return 1;
}

static u32 parse_number(const char* s) {
  u32 v = 0;
  if (s[0] == '0' && s[1] == 'x') {
    for (s += 2;; ++s) {
      const char c = *s;
      if (c >= '0' && c <= '9') v = v * 16 + (u32)(c - '0');
      else if (c >= 'a' && c <= 'f') v = v * 16 + (u32)(c - 'a' + 10);
      else return v;
    }
  }
  for (; *s >= '0' && *s <= '9'; ++s) v = v * 10 + (u32)(*s - '0');
  return v;
}

static void parse_cmdline(void) {
  for (const char* p = cmdline; *p;) {
    while (*p == ' ') ++p;
    if (starts_with(p, "hostile.seed=")) seed = parse_number(p + 13);
    if (starts_with(p, "hostile.outs=")) use_outs = parse_number(p + 13);
    if (starts_with(p, "hostile.phases=")) {
      u32 i = 0;
      for (const char* s = p + 15; *s && *s != ' ' && i + 1 < sizeof phases; ++s) phases[i++] = *s;
      phases[i] = 0;
    }
    if (starts_with(p, "virtio_mmio.device=") && device_count < MAX_DEVICES) {
      const char* at = p;
      while (*at && *at != '@' && *at != ' ') ++at;
      if (*at == '@') devices[device_count++].base = parse_number(at + 1);
    }
    while (*p && *p != ' ') ++p;
  }
}

/* hvm_start_info (version 1): cmdline_paddr at 24, memmap_paddr at 40, entries at 48. */
static void read_start_info(const u8* info) {
  if (*(const u32*)info != 0x336ec578u) fail(CHECK_CMDLINE, "no hvm_start_info magic in %ebx");
  const char* src = (const char*)(uptr) * (const u32*)(info + 24);
  u32 i = 0;
  for (; src[i] && i + 1 < sizeof cmdline; ++i) cmdline[i] = src[i];
  cmdline[i] = 0;
  const u8* map = (const u8*)(uptr) * (const u32*)(info + 40);
  const u32 entries = *(const u32*)(info + 48);
  for (u32 e = 0; e < entries; ++e) {
    const u8* entry = map + 24 * e;
    const u64 addr = *(const u64*)entry, size = *(const u64*)(entry + 8);
    const u32 type = *(const u32*)(entry + 16);
    if (type == 1 && addr <= 0x100000 && addr + size > ram_top && addr + size <= 0xd0000000ULL)
      ram_top = (u32)(addr + size);
  }
  if (ram_top < 0x1000000) fail(CHECK_CMDLINE, "the memory map shows less than 16 MiB from 1 MiB on");
}

/* ---- canary ---- */

struct range {
  u32 start, end;
};
static struct range canary_ranges[6];
static u32 canary_count;

static u32 canary_word(u32 page) { return (page * 0x9e3779b1u) ^ 0xc0ffee5au ^ seed; }

static void canary_add(u32 start, u32 end) { canary_ranges[canary_count++] = (struct range){start, end}; }

static void canary_fill(void) {
  canary_add(0x1000, 0x6000);  // below the start info (0x6000) and after it, up to the EBDA
  canary_add(0x7000, 0x9f000);
  canary_add((u32)(uptr)image_end, DRIVER_AREA_START);
  canary_add(DRIVER_AREA_END, ATTACK_AREA_START);
  canary_add(ATTACK_AREA_END, ram_top);
  for (u32 r = 0; r < canary_count; ++r) {
    for (u32 page = canary_ranges[r].start; page < canary_ranges[r].end; page += 0x1000) {
      const u32 w = canary_word(page >> 12);
      u32* p = (u32*)(uptr)page;
      for (u32 i = 0; i < 1024; ++i) p[i] = w;
    }
  }
}

static void canary_check(void) {
  for (u32 r = 0; r < canary_count; ++r) {
    for (u32 page = canary_ranges[r].start; page < canary_ranges[r].end; page += 0x1000) {
      const u32 w = canary_word(page >> 12);
      const u32* p = (const u32*)(uptr)page;
      for (u32 i = 0; i < 1024; ++i)
        if (p[i] != w) fail_at(CHECK_CANARY, "memory no ring or buffer names was written", page + 4 * i, p[i]);
    }
  }
}

static u32 image_checksum(void) {
  u32 sum = 0;
  for (const u32* p = (const u32*)image_start; p < (const u32*)image_code_end; ++p) sum = (sum << 5 | sum >> 27) ^ *p;
  return sum;
}

/* ---- main ---- */

const char* device_name(u32 id) {
  switch (id) {
    case ID_NET: return "net";
    case ID_BLK: return "blk";
    case ID_RNG: return "rng";
    case ID_VSOCK: return "vsock";
    default: return "unknown";
  }
}

static void identify_devices(void) {
  put("hostile: devices:");
  for (u32 i = 0; i < device_count; ++i) {
    struct vdev* d = &devices[i];
    if (vr(d, R_MAGIC) != 0x74726976u || vr(d, R_VERSION) != 2) fail_at(CHECK_MAGIC, "no virtio-mmio v2 window", d->base, vr(d, R_MAGIC));
    d->id = vr(d, R_DEVICE_ID);
    d->queues = 0;
    while (d->queues < 8) {
      vw(d, R_QUEUE_SEL, d->queues);
      if (vr(d, R_QUEUE_NUM_MAX) == 0) break;
      ++d->queues;
    }
    put(" ");
    put(device_name(d->id));
    put("@");
    put_hex(d->base);
  }
  put("\n");
}

static void run_phase(char phase) {
  switch (phase) {
    case 'r': attack_registers(4000); put("hostile: register traffic done\n"); break;
    case 'q': attack_queues(); put("hostile: illegal queues done\n"); break;
    case 'd': attack_descriptors(); put("hostile: hostile descriptors done\n"); break;
    case 'h': attack_hole(); put("hostile: unclaimed MMIO done\n"); break;
    case 'p': attack_ports(); put("hostile: unclaimed ports done\n"); break;
    case 's': attack_storm(40000); put("hostile: exit storm done\n"); break;
    case 'g': drive_devices(); put("hostile: well-behaved driver done\n"); break;
    /* Issue 18's sequence: its lines, windows, port flood, lines. */
    case 'I': put("hostile: issue18 first line\n"); break;
    case 'W': issue18_windows(); put("hostile: issue18 second line\n"); break;
    case 'P': issue18_ports(); put("hostile: issue18 third line\n"); break;
    default: fail(CHECK_CMDLINE, "unknown phase letter");
  }
}

u32 hostile_main(const u8* start_info) {
  const u32 code_sum = image_checksum();
  read_start_info(start_info);
  parse_cmdline();
  rnd_seed(seed);
  put("hostile: seed ");
  put_dec(seed);
  put(" phases ");
  put(phases);
  put("\n");
  identify_devices();
  canary_fill();
  for (const char* p = phases; *p; ++p) run_phase(*p);
  canary_check();
  if (image_checksum() != code_sum) fail(CHECK_IMAGE, "the guest's own code changed");
  put("hostile: canary intact, all checks passed\n");
  return 0;
}
