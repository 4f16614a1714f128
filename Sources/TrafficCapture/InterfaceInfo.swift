import CPcap
import Foundation
import TrafficCore

/// A capture device as `pcap_findalldevs` reports it.
///
/// ```swift
/// for device in try InterfaceInfo.list() { print(device.name, device.addresses) }
/// ```
public struct InterfaceInfo: Sendable, Equatable {
    public var name: String
    public var description: String?
    public var addresses: [IPAddress]
    public var isUp: Bool
    public var isRunning: Bool
    public var isLoopback: Bool

    /// Every capture device on this machine.
    public static func list() throws(CaptureError) -> [InterfaceInfo] {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        var first: UnsafeMutablePointer<pcap_if_t>?
        guard pcap_findalldevs(&first, &errbuf) == 0 else {
            throw .captureFailed(interface: "(all)", reason: PacketSource.clean(PacketSource.text(errbuf)))
        }
        defer { pcap_freealldevs(first) }
        var result = [InterfaceInfo]()
        var device = first
        while let d = device {
            var addresses = [IPAddress]()
            var address = d.pointee.addresses
            while let a = address {
                if let sa = a.pointee.addr, let ip = Self.ipAddress(sa) { addresses.append(ip) }
                address = a.pointee.next
            }
            let flags = d.pointee.flags
            result.append(InterfaceInfo(
                name: String(cString: d.pointee.name),
                description: d.pointee.description.map { String(cString: $0) },
                addresses: addresses,
                isUp: flags & UInt32(PCAP_IF_UP) != 0,
                isRunning: flags & UInt32(PCAP_IF_RUNNING) != 0,
                isLoopback: flags & UInt32(PCAP_IF_LOOPBACK) != 0))
            device = d.pointee.next
        }
        return result
    }

    static func ipAddress(_ sa: UnsafeMutablePointer<sockaddr>) -> IPAddress? {
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            return sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                IPAddress(ipv4: UInt32(bigEndian: sin.pointee.sin_addr.s_addr))
            }
        case AF_INET6:
            return sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                withUnsafeBytes(of: sin6.pointee.sin6_addr) { raw in
                    IPAddress(
                        ipv6High: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                        low: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
                }
            }
        default:
            return nil
        }
    }
}
