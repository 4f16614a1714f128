/* The baseline for trafficmon's offline figure: the cheapest possible libpcap read
 * loop over a capture file (pcap_dispatch with a callback that adds up the wire
 * length). trafficmon's `report` is measured against it in the same run.
 *   cc -O2 -o bare-read scripts/bare-read.c -lpcap && ./bare-read [--mmap] FILE
 * --mmap reads the file the way trafficmon does (a memory map handed to libpcap as an
 * fmemopen stream) instead of pcap_open_offline's stdio reads, for a like-for-like figure. */
#include <pcap/pcap.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct totals { uint64_t packets, bytes; };

static void count(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes) {
    struct totals *t = (struct totals *)user;
    (void)bytes;
    t->packets++;
    t->bytes += h->len;
}

static pcap_t *open_mapped(const char *path, char *errbuf) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) { snprintf(errbuf, PCAP_ERRBUF_SIZE, "cannot map %s", path); return NULL; }
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (base == MAP_FAILED) { snprintf(errbuf, PCAP_ERRBUF_SIZE, "cannot map %s", path); return NULL; }
    madvise(base, (size_t)st.st_size, MADV_SEQUENTIAL);
    FILE *stream = fmemopen(base, (size_t)st.st_size, "rb");
    return stream ? pcap_fopen_offline_with_tstamp_precision(stream, PCAP_TSTAMP_PRECISION_NANO, errbuf) : NULL;
}

int main(int argc, char **argv) {
    char errbuf[PCAP_ERRBUF_SIZE];
    struct totals t = {0, 0};
    int mapped = argc == 3 && strcmp(argv[1], "--mmap") == 0;
    if (argc != 2 && !mapped) { fprintf(stderr, "usage: bare-read [--mmap] FILE\n"); return 2; }
    const char *path = argv[argc - 1];
    pcap_t *p = mapped ? open_mapped(path, errbuf)
                       : pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, errbuf);
    if (!p) { fprintf(stderr, "bare-read: %s\n", errbuf); return 2; }
    int n;
    while ((n = pcap_dispatch(p, 10000, count, (u_char *)&t)) > 0) {}
    if (n < 0) { fprintf(stderr, "bare-read: %s\n", pcap_geterr(p)); return 2; }
    printf("%llu packets %llu bytes\n", (unsigned long long)t.packets, (unsigned long long)t.bytes);
    pcap_close(p);
    return 0;
}
