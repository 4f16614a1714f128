#ifndef TRAFFICMON_CBUILDINFO_H
#define TRAFFICMON_CBUILDINFO_H

/// The build stamp: what scripts/build-release wrote into the shipped binary (the git
/// revision, the number of commits and the commit time), or a note that it was built
/// some other way. A NUL-terminated string.
const char *trafficmon_build_stamp(void);

#endif
