extension WindowRecord {
    /// The same window with at most `top` clients listed (the rest added into `other`,
    /// `other.clients` counting them) and at most `top` services in the window-wide list
    /// and in each listed client's list (the rest folded into one `other` entry per
    /// direction), as `--top` does when a record is built. Totals and conservation are
    /// unchanged.
    ///
    /// ```swift
    /// let summary = record.folded(top: 0)   // totals only: no client listed
    /// ```
    public func folded(top: Int) -> WindowRecord {
        let top = max(0, top)
        var record = self
        if clients.count > top {
            for client in clients[top...] {
                record.other.in += client.in
                record.other.out += client.out
            }
            record.other.clients &+= UInt64(clients.count - top)
            record.clients.removeSubrange(top...)
        }
        for i in record.clients.indices where record.clients[i].services.count > top {
            record.clients[i].services = WindowRecordBuilder.sortedAndFolded(record.clients[i].services, top: top)
        }
        if services.count > top {
            record.services = WindowRecordBuilder.sortedAndFolded(services, top: top)
        }
        return record
    }
}
