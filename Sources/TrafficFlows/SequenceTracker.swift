/// Finds gaps in an exporter's sequence numbers: datagrams (or flow records) the network or
/// a full buffer lost between the exporter and the collector.
///
/// NetFlow v9 and sFlow number datagrams (the next is the last plus one). NetFlow v5 and
/// IPFIX number flow records: the next datagram's number is the last one's plus the records
/// the last one carried (RFC 7011), or plus the records it carries itself (softflowd 1.1
/// numbers IPFIX messages so); either is accepted. A number behind the expected one (a
/// duplicate, reordering, an exporter restart) starts the count again without a gap; a
/// number ahead of every expected one is a gap.
///
/// ```swift
/// var sequence = SequenceTracker()
/// sequence.check(7, records: nil, countsRecords: false)   // false: the first one
/// sequence.check(9, records: nil, countsRecords: false)   // true: datagram 8 was lost
/// ```
struct SequenceTracker {
    private var last: UInt32 = 0
    private var lastRecords: UInt32 = 0
    private var known = false

    /// Notes datagram number `sequence` carrying `records` records (`nil`: not known, as
    /// when a data set's template is missing: then the next number is not judged). Returns
    /// whether a gap lies before it.
    mutating func check(_ sequence: UInt32, records: UInt32?, countsRecords: Bool) -> Bool {
        defer {
            last = sequence
            lastRecords = records ?? 0
            known = records != nil || !countsRecords
        }
        guard known else { return false }
        let first = countsRecords ? last &+ lastRecords : last &+ 1
        let second = countsRecords ? records.map { last &+ $0 } : nil
        if sequence == first || sequence == second { return false }
        // Ahead of the furthest expected number: something was lost.
        var furthest = first
        if let second, Int32(bitPattern: second &- last) > Int32(bitPattern: first &- last) { furthest = second }
        return Int32(bitPattern: sequence &- furthest) > 0
    }
}
