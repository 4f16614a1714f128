#define _GNU_SOURCE
#include "CTrafficCaptureShims.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#if defined(__GLIBC__)
static ssize_t memory_read(void *cookie, char *buffer, size_t size) {
    trafficmon_memory_stream *s = cookie;
    size_t n = s->length - s->position;
    if (n > size) n = size;
    if (n == 0) return 0;
    const unsigned char *to = (const unsigned char *)buffer;
    // stdio's buffer is the memory itself (see setvbuf below): nothing to copy. After a
    // seek stdio would ask for bytes at its buffer's start, which is read-only memory:
    // an error, not a write there.
    if (to >= s->base && to < s->base + s->length) {
        if (to != s->base + s->position) {
            errno = ESPIPE;
            return -1;
        }
    } else {
        memcpy(buffer, s->base + s->position, n);
    }
    s->position += n;
    return (ssize_t)n;
}

static int memory_seek(void *cookie, off64_t *offset, int whence) {
    trafficmon_memory_stream *s = cookie;
    off64_t from = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? (off64_t)s->position : (off64_t)s->length;
    off64_t to = from + *offset;
    if (to < 0 || to > (off64_t)s->length) return -1;
    s->position = (size_t)to;
    *offset = to;
    return 0;
}

static int memory_close(void *cookie) {
    free(cookie);
    return 0;
}
#endif

FILE *trafficmon_memory_stream_open(const void *base, size_t length, trafficmon_memory_stream **state) {
    *state = NULL;
#if defined(__GLIBC__)
    trafficmon_memory_stream *s = calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    s->base = base;
    s->length = length;
    cookie_io_functions_t io = {.read = memory_read, .write = NULL, .seek = memory_seek, .close = memory_close};
    FILE *file = fopencookie(s, "rb", io);
    if (file == NULL) {
        free(s);
        return NULL;
    }
    // The memory is stdio's buffer: one read hands it all over, without a copy, and
    // fread copies from it straight into libpcap's buffer.
    setvbuf(file, (char *)base, _IOFBF, length);
    s->file = file;
    *state = s;
    return file;
#else
    // No cookie streams here: an ordinary memory stream, whose position stays unknown.
    return fmemopen((void *)base, length, "rb");
#endif
}
