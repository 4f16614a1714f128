import CPcap
import Foundation
import TrafficCore

extension PacketSource {
    /// Opens `handles` live captures of one interface joined in one `PACKET_FANOUT` group
    /// (hash mode: the packets of a flow go to one handle), so that several threads share
    /// the interface's packets, each counted once.
    ///
    /// The group id is unique to this process: the kernel picks one
    /// (`PACKET_FANOUT_FLAG_UNIQUEID`), or, on kernels without that flag, one is derived
    /// from the process id. No packet is counted twice while the handles join: each one
    /// rejects everything (a filter that matches nothing) until every handle is in the
    /// group, and only then takes the real filter (or none). Each handle has its own kernel
    /// buffer of `options.bufferSize` bytes.
    ///
    /// ```swift
    /// let handles = try PacketSource.openFanout(PacketSource.LiveOptions(interface: "eth0"), handles: 4)
    /// ```
    public static func openFanout(_ options: LiveOptions, handles count: Int) throws(CaptureError) -> [PacketSource] {
        guard count > 1 else { return [try openLive(options)] }
        var closed = options
        closed.filter = "less 0"
        var sources: [PacketSource] = []
        var group: UInt32?
        for _ in 0..<count {
            let source = try openLive(closed)
            do {
                group = try source.joinFanout(group: group)
            } catch {
                throw .captureFailed(
                    interface: options.interface,
                    reason: "cannot spread it over \(count) capture threads (PACKET_FANOUT: \(error)); use --capture-threads 1")
            }
            sources.append(source)
        }
        for source in sources { try source.setFilter(options.filter ?? "") }
        return sources
    }

    /// Joins the fan-out group `group` (`nil`: the first handle makes a new, unique one);
    /// returns the group's id.
    private func joinFanout(group: UInt32?) throws(FanoutError) -> UInt32 {
        let fd = pcap_fileno(handle)
        guard fd >= 0 else { throw FanoutError(reason: "the capture has no socket") }
        let hash: UInt32 = 0
        let uniqueID: UInt32 = 0x2000
        if let group {
            try Self.setFanout(fd, group | hash << 16)
            return group
        }
        do {
            try Self.setFanout(fd, (hash | uniqueID) << 16)
        } catch {
            // A kernel without PACKET_FANOUT_FLAG_UNIQUEID: an id of this process's own.
            let id = UInt32(truncatingIfNeeded: getpid()) & 0xFFFF
            try Self.setFanout(fd, id | hash << 16)
            return id
        }
        var value: UInt32 = 0
        var length = socklen_t(MemoryLayout<UInt32>.size)
        guard getsockopt(fd, Self.solPacket, Self.packetFanout, &value, &length) == 0 else {
            throw FanoutError(reason: String(cString: strerror(errno)))
        }
        return value & 0xFFFF
    }

    private static func setFanout(_ fd: Int32, _ value: UInt32) throws(FanoutError) {
        var value = value
        guard setsockopt(fd, solPacket, packetFanout, &value, socklen_t(MemoryLayout<UInt32>.size)) == 0 else {
            throw FanoutError(reason: String(cString: strerror(errno)))
        }
    }

    /// Linux's `SOL_PACKET` and `PACKET_FANOUT` (not in every libc's headers).
    private static let solPacket: Int32 = 263
    private static let packetFanout: Int32 = 18
}

/// Why joining a fan-out group failed, in a few words.
struct FanoutError: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}
