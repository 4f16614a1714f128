extension WindowRecord {
    /// The same window with at most `top` clients and `top` servers listed (the rest added
    /// into `other` and `other_servers`, whose party counts count them) and at most `top`
    /// services in the window-wide list and in each listed party's list (the rest folded
    /// into one `other` entry per direction), and at most `top` named networks per side and
    /// `top` ASes, as `--top` does when a record is built.
    /// Totals and conservation are unchanged.
    ///
    /// ```swift
    /// let summary = record.folded(top: 0)   // totals only: no party listed
    /// ```
    public func folded(top: Int) -> WindowRecord {
        let top = max(0, top)
        var record = self
        Self.fold(&record.clients, into: &record.other, top: top)
        Self.fold(&record.servers, into: &record.otherServers, top: top)
        if services.count > top {
            record.services = WindowRecordBuilder.sortedAndFolded(services, top: top)
        }
        record.foldWho(top: top)
        return record
    }

    /// Keeps the first `top` parties (the list is sorted) and adds the rest into `other`;
    /// the kept parties' services, folded to `top`, get storage of their own (not the runs
    /// of the whole record's array).
    private static func fold(_ parties: inout [PartyRecord], into other: inout OtherCounts, top: Int) {
        let listed = TopFold.parties(count: parties.count, top: top, into: &other) { (parties[$0].in, parties[$0].out) }
        parties.removeSubrange(listed...)
        ServiceList.pack(&parties, foldingTo: top)
    }
}

/// The `--top` cut of a sorted list of parties, in one place for the record builder and
/// for folding a record again (`WindowRecord.folded(top:)`): the first `top` stay listed,
/// the rest are added into `other`, which counts them. (Services fold with
/// `WindowRecordBuilder.sortedAndFolded`.)
enum TopFold {
    /// Returns how many of the `count` parties stay listed; `totals(i)` gives the i-th
    /// party's traffic by direction.
    @inline(__always)
    static func parties(count: Int, top: Int?, into other: inout OtherCounts, totals: (Int) -> (in: Counts, out: Counts)) -> Int {
        let listed = min(count, max(0, top ?? Int.max))
        for i in listed..<count {
            let (inbound, outbound) = totals(i)
            other.in += inbound
            other.out += outbound
        }
        other.clients &+= UInt64(count - listed)
        return listed
    }
}
