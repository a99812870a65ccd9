/* hyper_vmm.h: the C ABI of Hyper's VMM (libhyper-vmm.so.1).
 *
 * Boots a Linux kernel in a KVM microVM from a plain C program, or from any language
 * that can call C. The library is the same VMM as the hyper-vmm command (hyper::Machine);
 * docs/embedding.md ("The C ABI") is the guide.
 *
 *   struct hyper_vmm_config config;
 *   hyper_vmm_config_init(&config);
 *   config.kernel = "/path/to/vmlinux";
 *   hyper_vmm* vm = NULL;
 *   int rc = hyper_vmm_create(&config, &vm);
 *   if (rc != HYPER_VMM_OK) { fprintf(stderr, "%s: %s\n", hyper_vmm_strerror(rc), hyper_vmm_last_error()); }
 *   struct hyper_vmm_exit exit_info = {sizeof exit_info};
 *   rc = hyper_vmm_run(vm, &exit_info);
 *   hyper_vmm_destroy(vm);
 *
 * ABI rules. Every symbol carries the version node HYPER_VMM_1. Structs the caller passes
 * in or out start with `struct_size`, which the caller sets to sizeof the struct as its
 * header declares it: a later library that has grown a struct still accepts the sizes
 * earlier headers declared (the fields a caller does not know about take their zero
 * defaults), and a library refuses a size larger than the one it knows
 * (HYPER_VMM_ERR_ABI) instead of ignoring fields it cannot honour. Fields are only ever
 * appended; error codes and exit reasons keep their values.
 *
 * Errors. Every function that can fail returns an int: HYPER_VMM_OK (0) or one of the
 * negative HYPER_VMM_ERR_* codes. hyper_vmm_strerror() names a code;
 * hyper_vmm_last_error() gives the detailed message of the calling thread's last failure.
 * No C++ exception ever leaves the library.
 *
 * Threads. hyper_vmm_stop() and hyper_vmm_timings() may be called from any thread at any
 * time between create and destroy; create, run and destroy of one handle must not overlap
 * (run blocks; stop is how another thread ends it). Different handles are independent.
 * hyper_vmm_run() runs the VM on threads of the library's own and joins them: the seccomp
 * filters confine those threads, never the caller's.
 *
 * Signals. The library never touches SIGINT, SIGTERM, SIGHUP or SIGPIPE and never changes
 * the caller's signal mask. The VMM's own threads block every asynchronous signal, so the
 * program's handlers never run on them. Two process-wide dispositions are the VMM's:
 * SIGRTMIN+1 (a no-op handler that kicks vCPU threads out of KVM_RUN) and, unless
 * HYPER_VMM_NO_SECCOMP, SIGSYS (it reports a VMM thread's forbidden system call, then
 * ends the process with status 159). A program must not use those two for itself.
 */
#ifndef HYPER_VMM_H
#define HYPER_VMM_H

#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes; hyper_vmm_version() gives the library's. */
#define HYPER_VMM_ABI_VERSION 1

/* Return codes. Stable values: new codes are added, none is renumbered or reused. */
enum hyper_vmm_error {
  HYPER_VMM_OK = 0,
  HYPER_VMM_ERR_INVALID_ARGUMENT = -1, /* a NULL or impossible argument or config field */
  HYPER_VMM_ERR_ABI = -2,              /* a struct_size this library does not know */
  HYPER_VMM_ERR_STATE = -3,            /* not now: run called twice, timings before run ended */
  HYPER_VMM_ERR_NOT_FOUND = -4,        /* a file or device (/dev/kvm, the kernel) does not exist */
  HYPER_VMM_ERR_PERMISSION = -5,       /* the host refused access (/dev/kvm, a disk image) */
  HYPER_VMM_ERR_IO = -6,               /* a host system call failed */
  HYPER_VMM_ERR_UNSUPPORTED = -7,      /* the host's KVM lacks something the VM needs */
  HYPER_VMM_ERR_BAD_IMAGE = -8,        /* the kernel or initrd is truncated or malformed */
  HYPER_VMM_ERR_OUT_OF_BOUNDS = -9,    /* something does not fit in guest memory */
  HYPER_VMM_ERR_KVM = -10,             /* KVM refused an operation */
  HYPER_VMM_ERR_NO_MEMORY = -11,       /* the host ran out of memory */
  HYPER_VMM_ERR_INTERNAL = -12         /* a bug in the library; the message says where */
};

/* How a run ended (hyper_vmm_exit.reason). */
enum hyper_vmm_exit_reason {
  HYPER_VMM_EXIT_GUEST_EXIT = 1,   /* the guest wrote its status to the exit port (0x501) */
  HYPER_VMM_EXIT_RESET = 2,        /* the guest rebooted */
  HYPER_VMM_EXIT_POWER_OFF = 3,    /* the guest powered off */
  HYPER_VMM_EXIT_TRIPLE_FAULT = 4, /* a vCPU triple-faulted */
  HYPER_VMM_EXIT_PANIC = 5,        /* the guest kernel panicked */
  HYPER_VMM_EXIT_CRASH = 6,        /* KVM reported a guest crash */
  HYPER_VMM_EXIT_ERROR = 7,        /* KVM or the VMM failed while the guest ran */
  HYPER_VMM_EXIT_STOPPED = 8       /* hyper_vmm_stop() ended it */
};

/* hyper_vmm_config.flags */
#define HYPER_VMM_RNG (1u << 0)        /* a virtio-rng device (entropy from the host's getrandom) */
#define HYPER_VMM_NO_SECCOMP (1u << 1) /* do not confine the VMM's threads with seccomp filters */
#define HYPER_VMM_HUGEPAGES (1u << 2)  /* back guest RAM with 2 MiB huge pages */

/* A virtio-blk disk: /dev/vda, /dev/vdb, ... in the order given. A fixed layout: if disks
 * ever need more, that will be a new struct and a new config field. */
struct hyper_vmm_disk {
  const char* path;  /* a raw image file, or nbd://HOST[:PORT][/EXPORT] or nbd+unix:///EXPORT?socket=PATH */
  int32_t read_only; /* nonzero: the guest cannot write */
  uint32_t reserved; /* must be 0 */
};

/* What to boot. Zero means the default wherever one makes sense; hyper_vmm_config_init()
 * gives a config with every default. Strings and arrays are read during
 * hyper_vmm_create() only: the caller may free them once it returns. */
struct hyper_vmm_config {
  uint32_t struct_size; /* sizeof(struct hyper_vmm_config) */
  uint32_t flags;       /* HYPER_VMM_RNG | HYPER_VMM_NO_SECCOMP | HYPER_VMM_HUGEPAGES; others must be 0 */
  const char* kernel;   /* required: an ELF vmlinux with a PVH note, or a bzImage */
  const char* initrd;   /* NULL: none */
  const char* cmdline;  /* NULL: none; appended to the VMM's own console/reboot arguments */
  uint32_t vcpus;       /* 0: 1 */
  int32_t console_fd;   /* the guest's serial console goes here (not owned: keep it open until
                           destroy); -1 discards it. Taken as given: 0 is stdin */
  uint64_t memory_mib;  /* guest RAM; 0: 128 */
  const struct hyper_vmm_disk* disks;
  uint32_t disk_count;
  int32_t log_fd;       /* the VMM's log lines (boot timer, device warnings), one write(2) each
                           (not owned); 0 or -1: none */
  uint64_t vsock_cid;   /* 0: no virtio-vsock device; else the guest's CID (3 or more) */
  const char* vsock_socket; /* with vsock_cid: the host Unix socket (guest port P is reached
                               by sending "CONNECT P\n"; the guest reaches host port P at
                               <vsock_socket>_P) */
  uint64_t start_ns;    /* CLOCK_MONOTONIC origin of the timings; 0: when create was called */
};

/* How a run ended. */
struct hyper_vmm_exit {
  uint32_t struct_size;     /* sizeof(struct hyper_vmm_exit), set by the caller */
  int32_t reason;           /* enum hyper_vmm_exit_reason */
  int32_t status;           /* GUEST_EXIT: the byte the guest wrote; else what the hyper-vmm
                               command exits with: 0 for RESET and POWER_OFF, 1 for
                               TRIPLE_FAULT, PANIC, CRASH and ERROR, 143 for STOPPED */
  uint32_t reserved;
  const char* detail;       /* a sentence saying what happened; valid until hyper_vmm_destroy */
  const char* console_tail; /* the guest console's last output (up to 16 KiB), for diagnosing a
                               panic or an error; valid until hyper_vmm_destroy */
};

/* CLOCK_MONOTONIC timestamps in nanoseconds, as the hyper-vmm command's --timings. Not
 * named hyper_vmm_timings: in C++ the function of that name would hide it. */
struct hyper_vmm_boot_timings {
  uint32_t struct_size; /* sizeof(struct hyper_vmm_boot_timings), set by the caller */
  uint32_t reserved;
  uint64_t start_ns;         /* the origin: hyper_vmm_config.start_ns, or the call to create */
  uint64_t first_kvm_run_ns; /* the first vCPU entered the guest; 0 if none did */
  uint64_t boot_timer_ns;    /* the guest wrote the boot-timer port; 0 if it never did */
  uint64_t exit_ns;          /* the run ended */
};

typedef struct hyper_vmm hyper_vmm; /* opaque */

/* A config with every default: the console and the log discarded, 1 vCPU, 128 MiB,
 * seccomp on. Inline, so that struct_size is this header's. */
static inline void hyper_vmm_config_init(struct hyper_vmm_config* config) {
  memset(config, 0, sizeof *config);
  config->struct_size = sizeof *config; /* no cast: C++ callers may build with -Wold-style-cast */
  config->console_fd = -1;
  config->log_fd = -1;
}

/* Builds the VM: guest memory, devices, the kernel and initrd loaded, vCPUs created. On
 * success *out is a handle for hyper_vmm_destroy(); on failure *out is NULL. */
int hyper_vmm_create(const struct hyper_vmm_config* config, hyper_vmm** out);

/* Runs the guest to its end (blocking) and describes the end in *out (NULL: not wanted).
 * A guest that panics, faults or dies of a KVM error is a run that ended: HYPER_VMM_OK
 * with that reason. Once per handle. */
int hyper_vmm_run(hyper_vmm* vm, struct hyper_vmm_exit* out);

/* Ends the guest: a blocked hyper_vmm_run() returns with HYPER_VMM_EXIT_STOPPED (unless
 * the guest had already ended some other way); a later one returns at once. Any thread. */
int hyper_vmm_stop(hyper_vmm* vm);

/* The run's timings; HYPER_VMM_ERR_STATE until hyper_vmm_run() has returned. */
int hyper_vmm_timings(const hyper_vmm* vm, struct hyper_vmm_boot_timings* out);

/* Frees the VM and everything it holds. NULL is fine. Not while hyper_vmm_run() or
 * hyper_vmm_stop() is still in progress on another thread. */
void hyper_vmm_destroy(hyper_vmm* vm);

/* A static name for a return code ("invalid argument"); never NULL. */
const char* hyper_vmm_strerror(int code);

/* A static name for an exit reason ("guest exit"); never NULL. */
const char* hyper_vmm_exit_reason_name(int reason);

/* What the calling thread's last failing call said, in detail ("kernel image
 * /etc/hostname: neither an ELF vmlinux nor a bzImage"); "" if none failed. Valid until
 * this thread's next failing call. */
const char* hyper_vmm_last_error(void);

/* The ABI the library implements (HYPER_VMM_ABI_VERSION of its build). A program built
 * with this header works with a library whose version is at least HYPER_VMM_ABI_VERSION. */
int hyper_vmm_version(void);

#ifdef __cplusplus
}
#endif

#endif /* HYPER_VMM_H */
