/* The baseline for trafficmon's offline figure: the cheapest possible libpcap read
 * loop over a capture file (pcap_dispatch with a callback that adds up the wire
 * length). trafficmon's `report` is measured against it in the same run.
 *   cc -O2 -o bare-read scripts/bare-read.c -lpcap && ./bare-read FILE */
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdint.h>

struct totals { uint64_t packets, bytes; };

static void count(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes) {
    struct totals *t = (struct totals *)user;
    (void)bytes;
    t->packets++;
    t->bytes += h->len;
}

int main(int argc, char **argv) {
    char errbuf[PCAP_ERRBUF_SIZE];
    struct totals t = {0, 0};
    if (argc != 2) { fprintf(stderr, "usage: bare-read FILE\n"); return 2; }
    pcap_t *p = pcap_open_offline_with_tstamp_precision(argv[1], PCAP_TSTAMP_PRECISION_NANO, errbuf);
    if (!p) { fprintf(stderr, "bare-read: %s\n", errbuf); return 2; }
    int n;
    while ((n = pcap_dispatch(p, 10000, count, (u_char *)&t)) > 0) {}
    if (n < 0) { fprintf(stderr, "bare-read: %s\n", pcap_geterr(p)); return 2; }
    printf("%llu packets %llu bytes\n", (unsigned long long)t.packets, (unsigned long long)t.bytes);
    pcap_close(p);
    return 0;
}
