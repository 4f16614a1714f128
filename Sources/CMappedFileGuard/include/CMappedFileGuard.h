#ifndef C_MAPPED_FILE_GUARD_H
#define C_MAPPED_FILE_GUARD_H

#include <stddef.h>

/// Turns a SIGBUS in a registered read-only file map (the file was truncated while it was
/// mapped: its pages past the new end are gone) into a readable page of 0xFF bytes and a
/// flag, instead of the end of the process. 0xFF bytes make every capture-file reader stop
/// at the next record or block header (a length of 0xFFFFFFFF is never valid); the reader
/// then asks `trafficmon_map_guard_faulted` and reports the file as cut.
///
/// The first registration installs the SIGBUS handler; a SIGBUS outside every registered
/// map goes to the handler installed before it (or ends the process as it would have).

/// Registers the map [base, base + length); returns its slot, or -1 when all 4096 slots are
/// taken or the handler cannot be installed (the map is then unguarded).
int trafficmon_map_guard_register(const void *base, size_t length);

/// Forgets a slot (before the map is unmapped).
void trafficmon_map_guard_unregister(int slot);

/// Whether a page of the slot's map was replaced after a SIGBUS (the file shrank).
int trafficmon_map_guard_faulted(int slot);

#endif
