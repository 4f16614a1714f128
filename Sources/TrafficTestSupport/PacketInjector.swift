import Foundation

/// Sends whole Ethernet frames out of one interface through a packet socket (root or
/// `CAP_NET_RAW`): on one end of a veth pair they arrive, as they are, at the other end,
/// where a live capture sees them.
///
/// ```swift
/// let injector = try PacketInjector(interface: "tm-b0")
/// injector.send(FrameBuilder.ethernet(ip: packet))
/// ```
public final class PacketInjector: @unchecked Sendable {
    let fd: Int32
    let index: Int32

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public init(interface: String) throws {
        index = Int32(if_nametoindex(interface))
        guard index > 0 else { throw Failure(description: "no interface \(interface)") }
        fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "packet socket: \(String(cString: strerror(errno)))") }
        // struct sockaddr_ll (20 bytes): family, protocol, interface index, then zeroes.
        var address = [UInt8](repeating: 0, count: 20)
        withUnsafeBytes(of: UInt16(AF_PACKET)) { address.replaceSubrange(0..<2, with: $0) }
        withUnsafeBytes(of: index) { address.replaceSubrange(4..<8, with: $0) }
        let bound = address.withUnsafeBytes { raw in
            bind(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
        }
        guard bound == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "bind to \(interface): \(reason)")
        }
    }

    deinit { close(fd) }

    /// Sends one frame; returns whether the whole frame went out.
    @discardableResult
    public func send(_ frame: [UInt8]) -> Bool {
        frame.withUnsafeBytes { Foundation.send(fd, $0.baseAddress, $0.count, 0) } == frame.count
    }
}
