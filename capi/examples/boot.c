/* boot: boots a Linux kernel through libhyper-vmm's C ABI, the console on stdout.
 *
 *   boot --kernel KERNEL [--initrd INITRD] [--cmdline ARGS] [--stop-after MS]
 *
 * Prints how the guest ended and its timings on stderr, and exits with the guest's status
 * (the byte it wrote to the exit port, 0 when it rebooted or powered off, 1 when it
 * panicked or faulted); 1 when the library failed; 2 for bad arguments. --stop-after
 * stops the VM from a second thread, as a program that enforces a deadline would.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hyper_vmm.h>

struct options {
  const char* kernel;
  const char* initrd;
  const char* cmdline;
  long stop_after_ms; /* -1: never */
};

static void usage(FILE* to) {
  fprintf(to,
          "usage: boot --kernel KERNEL [--initrd INITRD] [--cmdline ARGS] [--stop-after MS]\n"
          "Boots KERNEL (vmlinux or bzImage) in a KVM microVM through libhyper-vmm, the guest's\n"
          "console on stdout; how it ended and its timings go to stderr. Exit status: the\n"
          "guest's; 1 when the VMM failed; 2 for bad arguments.\n");
}

/* 0: parsed; 1: --help; -1: bad arguments (said why on stderr). */
static int parse_args(int argc, char** argv, struct options* opt) {
  int i;
  opt->kernel = NULL;
  opt->initrd = NULL;
  opt->cmdline = NULL;
  opt->stop_after_ms = -1;
  for (i = 1; i < argc; i += 2) { /* each option takes a value */
    const char* arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return 1;
    if (!value) {
      fprintf(stderr, "boot: %s: unknown option, or it needs a value\n", arg);
      return -1;
    }
    if (strcmp(arg, "--kernel") == 0) {
      opt->kernel = value;
    } else if (strcmp(arg, "--initrd") == 0) {
      opt->initrd = value;
    } else if (strcmp(arg, "--cmdline") == 0) {
      opt->cmdline = value;
    } else if (strcmp(arg, "--stop-after") == 0) {
      char* end = NULL;
      errno = 0;
      opt->stop_after_ms = strtol(value, &end, 10);
      if (*value == '\0' || *end != '\0' || errno != 0 || opt->stop_after_ms < 0) {
        fprintf(stderr, "boot: --stop-after %s: not a number of milliseconds\n", value);
        return -1;
      }
    } else {
      fprintf(stderr, "boot: %s: unknown option\n", arg);
      return -1;
    }
  }
  if (!opt->kernel) {
    fprintf(stderr, "boot: --kernel is required\n");
    return -1;
  }
  return 0;
}

/* Calls hyper_vmm_stop() after a delay unless the run ends first: the one function that
 * may be called while another thread is blocked in hyper_vmm_run(). */
struct stopper {
  hyper_vmm* vm;
  long after_ms;
  pthread_mutex_t mutex;
  pthread_cond_t run_ended;
  int ended;
  pthread_t thread;
};

static void* stop_later(void* arg) {
  struct stopper* s = arg;
  struct timespec deadline;
  int rc = 0;
  int ended;
  int stopped;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += s->after_ms / 1000;
  deadline.tv_nsec += (s->after_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&s->mutex);
  while (!s->ended && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&s->run_ended, &s->mutex, &deadline);
  ended = s->ended;
  pthread_mutex_unlock(&s->mutex);
  if (ended) return NULL;
  stopped = hyper_vmm_stop(s->vm);
  if (stopped != HYPER_VMM_OK) fprintf(stderr, "boot: stop: %s: %s\n", hyper_vmm_strerror(stopped), hyper_vmm_last_error());
  return NULL;
}

/* 0 when the thread runs. */
static int start_stopper(struct stopper* s, hyper_vmm* vm, long after_ms) {
  pthread_condattr_t attr;
  int rc;
  s->vm = vm;
  s->after_ms = after_ms;
  s->ended = 0;
  pthread_mutex_init(&s->mutex, NULL);
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* a deadline that clock changes cannot move */
  pthread_cond_init(&s->run_ended, &attr);
  pthread_condattr_destroy(&attr);
  rc = pthread_create(&s->thread, NULL, stop_later, s);
  if (rc != 0) fprintf(stderr, "boot: cannot start the stop thread: %s\n", strerror(rc));
  return rc;
}

/* Before hyper_vmm_destroy(): the thread must not be left holding the handle. */
static void finish_stopper(struct stopper* s) {
  pthread_mutex_lock(&s->mutex);
  s->ended = 1;
  pthread_cond_signal(&s->run_ended);
  pthread_mutex_unlock(&s->mutex);
  pthread_join(s->thread, NULL);
  pthread_cond_destroy(&s->run_ended);
  pthread_mutex_destroy(&s->mutex);
}

static double ms_since(uint64_t from, uint64_t to) { return to > from ? (double)(to - from) / 1e6 : 0.0; }

/* The start of the last `count` lines of `text`. */
static const char* last_lines(const char* text, int count) {
  const char* start = text + strlen(text);
  if (start > text && start[-1] == '\n') --start; /* the final newline ends the last line */
  while (start > text && count > 0) {
    --start;
    if (*start == '\n' && --count == 0) return start + 1;
  }
  return text;
}

static void print_exit(const struct hyper_vmm_exit* info) {
  fprintf(stderr, "boot: exit: %s, status %d: %s\n", hyper_vmm_exit_reason_name(info->reason), info->status,
          info->detail);
  switch (info->reason) {
    case HYPER_VMM_EXIT_PANIC:
    case HYPER_VMM_EXIT_CRASH:
    case HYPER_VMM_EXIT_TRIPLE_FAULT:
    case HYPER_VMM_EXIT_ERROR:
      fprintf(stderr, "boot: last console output:\n%s\n", last_lines(info->console_tail, 20));
      break;
    default:
      break;
  }
}

static void print_timings(const struct hyper_vmm_boot_timings* t) {
  fprintf(stderr, "boot: timings: first_kvm_run_ms=%.3f boot_timer_ms=", ms_since(t->start_ns, t->first_kvm_run_ns));
  if (t->boot_timer_ns)
    fprintf(stderr, "%.3f", ms_since(t->start_ns, t->boot_timer_ns));
  else
    fprintf(stderr, "none");
  fprintf(stderr, " exit_ms=%.3f\n", ms_since(t->start_ns, t->exit_ns));
}

static int library_error(const char* what, int rc) {
  fprintf(stderr, "boot: %s: %s: %s\n", what, hyper_vmm_strerror(rc), hyper_vmm_last_error());
  return 1;
}

/* Runs the built VM to its end; the exit status for main. */
static int run(hyper_vmm* vm, long stop_after_ms) {
  struct hyper_vmm_exit info;
  struct hyper_vmm_boot_timings timings;
  struct stopper stopper;
  const int stopping = stop_after_ms >= 0;
  int rc;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  memset(&timings, 0, sizeof timings);
  timings.struct_size = sizeof timings;
  if (stopping && start_stopper(&stopper, vm, stop_after_ms) != 0) return 1;
  rc = hyper_vmm_run(vm, &info);
  if (stopping) finish_stopper(&stopper);
  if (rc != HYPER_VMM_OK) return library_error("run", rc);
  print_exit(&info);
  rc = hyper_vmm_timings(vm, &timings);
  if (rc != HYPER_VMM_OK) return library_error("timings", rc);
  print_timings(&timings);
  return info.status;
}

int main(int argc, char** argv) {
  struct options opt;
  struct hyper_vmm_config config;
  struct timespec now;
  hyper_vmm* vm = NULL;
  int rc;
  int status;

  /* The timings count from here, as hyper-vmm's count from its exec. */
  clock_gettime(CLOCK_MONOTONIC, &now);
  rc = parse_args(argc, argv, &opt);
  if (rc != 0) {
    usage(rc > 0 ? stdout : stderr);
    return rc > 0 ? 0 : 2;
  }
  if (hyper_vmm_version() < HYPER_VMM_ABI_VERSION) {
    fprintf(stderr, "boot: libhyper-vmm implements ABI %d, this program needs %d\n", hyper_vmm_version(),
            HYPER_VMM_ABI_VERSION);
    return 1;
  }

  hyper_vmm_config_init(&config);
  config.kernel = opt.kernel;
  config.initrd = opt.initrd;
  config.cmdline = opt.cmdline;
  config.console_fd = STDOUT_FILENO;
  config.log_fd = STDERR_FILENO;
  config.start_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
  rc = hyper_vmm_create(&config, &vm);
  if (rc != HYPER_VMM_OK) return library_error("create", rc);
  status = run(vm, opt.stop_after_ms);
  hyper_vmm_destroy(vm);
  return status;
}
