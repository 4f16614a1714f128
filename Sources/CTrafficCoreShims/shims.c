// The shims are static inline functions in the header; this file only gives the target a source.
#include "CTrafficCoreShims.h"
