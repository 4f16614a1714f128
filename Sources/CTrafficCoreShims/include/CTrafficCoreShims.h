#ifndef C_TRAFFIC_CORE_SHIMS_H
#define C_TRAFFIC_CORE_SHIMS_H

/// Asks the CPU to start loading the cache line at `address` for a write, so a hash-table
/// slot is in cache by the time the packet path reaches it. A hint only: it never faults.
static inline void trafficmon_prefetch_for_write(const void *address) {
    __builtin_prefetch(address, 1, 3);
}

/// Asks the CPU to start loading the cache line at `address` for reading (a frame a few
/// packets ahead). A hint only: it never faults.
static inline void trafficmon_prefetch_for_read(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
