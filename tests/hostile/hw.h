/* Freestanding primitives of the hostile guest: port and MMIO accesses of every width,
   COM1 output, a seeded PRNG, and failing with a numbered check. */
#pragma once

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned int uptr;

#define COM1 0x3f8
#define EXIT_PORT 0x501
#define BOOT_TIMER_PORT 0x502

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u16 inw(u16 port) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* Paging is off: a physical address is a pointer. */
static inline u8 mmio_r8(u32 a) { return *(volatile u8*)(uptr)a; }
static inline u16 mmio_r16(u32 a) { return *(volatile u16*)(uptr)a; }
static inline u32 mmio_r32(u32 a) { return *(volatile u32*)(uptr)a; }
static inline void mmio_w8(u32 a, u8 v) { *(volatile u8*)(uptr)a = v; }
static inline void mmio_w16(u32 a, u16 v) { *(volatile u16*)(uptr)a = v; }
static inline void mmio_w32(u32 a, u32 v) { *(volatile u32*)(uptr)a = v; }
/* One 8-byte access (MMX movq: CR0.EM and CR0.TS are clear at PVH entry). */
static inline void mmio_w64(u32 a, u64 v) {
  __asm__ volatile("movq %1, %%mm0\n\tmovq %%mm0, %0\n\temms" : "=m"(*(volatile u64*)(uptr)a) : "m"(v) : "memory");
}
static inline u64 mmio_r64(u32 a) {
  u64 v;
  __asm__ volatile("movq %1, %%mm0\n\tmovq %%mm0, %0\n\temms" : "=m"(v) : "m"(*(volatile u64*)(uptr)a) : "memory");
  return v;
}
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
static inline void fence(void) { __asm__ volatile("lock; addl $0, (%%esp)" ::: "memory"); }

void put(const char* s);
void put_hex(u32 v);
void put_dec(u32 v);
/* Prints "hostile: FAIL <what>" and exits with `check` (never returns). */
__attribute__((noreturn)) void fail(u32 check, const char* what);
__attribute__((noreturn)) void fail_at(u32 check, const char* what, u32 where, u32 value);

/* xorshift32, seeded from the command line so that a failing run can be replayed. */
u32 rnd(void);
void rnd_seed(u32 seed);

void* memset(void* d, int c, unsigned n);
void* memcpy(void* d, const void* s, unsigned n);
int memcmp(const void* a, const void* b, unsigned n);

/* Check numbers: the guest's exit status names the first check that failed. */
enum {
  CHECK_CMDLINE = 10,
  CHECK_CANARY = 11,
  CHECK_IMAGE = 12,
  CHECK_MAGIC = 13,
  CHECK_RESET = 14,
  CHECK_NEGOTIATE = 15,
  CHECK_HOLE = 16,
  CHECK_PORTS = 17,
  CHECK_STORM = 18,
  CHECK_BLK = 20,
  CHECK_RNG = 21,
  CHECK_VSOCK = 22,
  CHECK_NET = 23,
  CHECK_ACTIVATE = 24,
};
