extension WindowRecord {
    /// The same window with at most `top` clients and `top` servers listed (the rest added
    /// into `other` and `other_servers`, whose party counts count them) and at most `top`
    /// services in the window-wide list and in each listed party's list (the rest folded
    /// into one `other` entry per direction), as `--top` does when a record is built.
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
        return record
    }

    /// Keeps the first `top` parties (the list is sorted) and adds the rest into `other`.
    private static func fold(_ parties: inout [PartyRecord], into other: inout OtherCounts, top: Int) {
        if parties.count > top {
            for party in parties[top...] {
                other.in += party.in
                other.out += party.out
            }
            other.clients &+= UInt64(parties.count - top)
            parties.removeSubrange(top...)
        }
        for i in parties.indices where parties[i].services.count > top {
            parties[i].services = WindowRecordBuilder.sortedAndFolded(parties[i].services, top: top)
        }
    }
}
