// Counts calls to malloc, calloc, realloc and posix_memalign/aligned_alloc in the process it
// is preloaded into (scripts/bench-flows): the bench reads the count through
// `trafficmon_malloc_count` to report allocations per record decoded and counted.
#define _GNU_SOURCE
#include <stddef.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static unsigned long count;

void *malloc(size_t size) { __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED); return __libc_calloc(n, size); }
void *realloc(void *p, size_t size) { __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED); return __libc_realloc(p, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    void *p = __libc_memalign(alignment, size);
    if (!p) return 12;
    *out = p;
    return 0;
}
void *aligned_alloc(size_t alignment, size_t size) { __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED); return __libc_memalign(alignment, size); }
unsigned long trafficmon_malloc_count(void) { return __atomic_load_n(&count, __ATOMIC_RELAXED); }
