#ifndef C_TRAFFIC_CAPTURE_SHIMS_H
#define C_TRAFFIC_CAPTURE_SHIMS_H

#include <stddef.h>
#include <stdio.h>

/// A read-only stdio stream over memory (a memory-mapped capture file), for
/// `pcap_fopen_offline`, that can say at any moment which byte of that memory the
/// stream's reader has got to: where libpcap has just read a packet's record, so the
/// packet's bytes can be found in the map instead of in libpcap's copy of them.
/// On glibc the memory itself is stdio's buffer (no copy into a buffer of stdio's own);
/// the stream is for reading from start to end, as libpcap does: a read after a seek out
/// of stdio's window fails (ESPIPE) rather than write into the memory.
typedef struct trafficmon_memory_stream {
    const unsigned char *base;
    size_t length;
    /// Bytes handed to stdio so far (stdio may not have handed them on yet).
    size_t position;
    FILE *file;
} trafficmon_memory_stream;

/// Opens a stream over `length` bytes at `base` (which must outlive it); `*state` is freed
/// by `fclose` (that is, by `pcap_close`). Returns NULL when stdio cannot make one. Off
/// glibc the stream is an `fmemopen` one and `*state` stays NULL: its position is unknown.
FILE *trafficmon_memory_stream_open(const void *base, size_t length, trafficmon_memory_stream **state);

/// The offset in the memory of the next byte the stream's reader will get (the end of
/// what `fread` has returned so far). Only for a non-NULL `state` (glibc).
static inline long trafficmon_memory_stream_offset(const trafficmon_memory_stream *state) {
#if defined(__GLIBC__)
    const FILE *f = state->file;
    return (long)state->position - (long)(f->_IO_read_end - f->_IO_read_ptr);
#else
    (void)state;
    return -1;
#endif
}

#endif
