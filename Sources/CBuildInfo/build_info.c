#include "CBuildInfo.h"

// A section of its own, so that scripts/build-release can stamp the stripped binary
// after linking (objcopy --update-section .trafficmon_build=FILE, the same 256 bytes):
// a new commit then costs no recompile and no relink, and the build flags never change.
// A binary built by other means (swift build, the tests) keeps this text.
__attribute__((section(".trafficmon_build"), used, aligned(16)))
const char trafficmon_build_stamp_text[256] = "no build stamp: not built by scripts/build-release";

const char *trafficmon_build_stamp(void) {
    return trafficmon_build_stamp_text;
}
