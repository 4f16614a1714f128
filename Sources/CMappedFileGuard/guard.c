#define _GNU_SOURCE
#include "CMappedFileGuard.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Maps guarded at once (`report` maps every file it is given before reading the first). */
#define SLOTS 4096

struct slot {
    _Atomic uintptr_t base;   /* 0: free */
    _Atomic size_t length;
    _Atomic int faulted;
};

static struct slot slots[SLOTS];
static struct sigaction previous;
static int fill_fd = -1;          /* one page of 0xFF bytes (memfd), or -1: zero pages */
static size_t page_size;
static int installed;             /* 1: handler in place, -1: could not install */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void forward(int signal, siginfo_t *info, void *context) {
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction) {
            previous.sa_sigaction(signal, info, context);
            return;
        }
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(signal);
        return;
    }
    /* Default action: restore it; the faulting access runs again and ends the process. */
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigemptyset(&fallback.sa_mask);
    sigaction(signal, &fallback, NULL);
}

static void on_sigbus(int signal, siginfo_t *info, void *context) {
    uintptr_t address = (uintptr_t)info->si_addr;
    for (int i = 0; i < SLOTS; i++) {
        uintptr_t base = atomic_load(&slots[i].base);
        if (base == 0 || address < base || address - base >= atomic_load(&slots[i].length)) continue;
        void *page = (void *)(address & ~(uintptr_t)(page_size - 1));
        /* mmap is a plain system call: safe here, though POSIX does not list it. */
        void *mapped = fill_fd >= 0
            ? mmap(page, page_size, PROT_READ, MAP_SHARED | MAP_FIXED, fill_fd, 0)
            : mmap(page, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (mapped == MAP_FAILED) break;
        atomic_store(&slots[i].faulted, 1);
        return;
    }
    forward(signal, info, context);
}

static void install(void) {
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    int fd = memfd_create("trafficmon-cut-page", MFD_CLOEXEC);
    if (fd >= 0 && ftruncate(fd, (off_t)page_size) == 0) {
        void *page = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (page != MAP_FAILED) {
            memset(page, 0xFF, page_size);
            munmap(page, page_size);
            fill_fd = fd;
        } else {
            close(fd);
        }
    } else if (fd >= 0) {
        close(fd);
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    installed = sigaction(SIGBUS, &action, &previous) == 0 ? 1 : -1;
}

int trafficmon_map_guard_register(const void *base, size_t length) {
    pthread_once(&once, install);
    if (installed != 1 || base == NULL || length == 0) return -1;
    for (int i = 0; i < SLOTS; i++) {
        uintptr_t expected = 0;
        if (atomic_compare_exchange_strong(&slots[i].base, &expected, (uintptr_t)1)) {
            /* Reserved (base 1 matches no map of length 0); fill in, then publish. */
            atomic_store(&slots[i].faulted, 0);
            atomic_store(&slots[i].length, length);
            atomic_store(&slots[i].base, (uintptr_t)base);
            return i;
        }
    }
    return -1;
}

void trafficmon_map_guard_unregister(int slot) {
    if (slot < 0 || slot >= SLOTS) return;
    atomic_store(&slots[slot].length, 0);
    atomic_store(&slots[slot].base, 0);
}

int trafficmon_map_guard_faulted(int slot) {
    if (slot < 0 || slot >= SLOTS) return 0;
    return atomic_load(&slots[slot].faulted);
}
