import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A UDP socket that sends datagrams to a collector under test, from a chosen source
/// address: any 127.0.0.0/8 address is this machine's, so one test can play several
/// exporters; `::1` sends over IPv6.
///
/// ```swift
/// let router = try UDPSender(from: "127.0.0.2")
/// router.send(datagram, to: "127.0.0.1", port: 2055)
/// ```
public final class UDPSender: @unchecked Sendable {
    public let fd: Int32
    let family: Int32

    public init(from source: String = "127.0.0.1") throws {
        family = source.contains(":") ? AF_INET6 : AF_INET
        fd = socket(family, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw TestProcess.Failure("cannot make a UDP socket (errno \(errno))") }
        var storage = sockaddr_storage()
        let length = Self.fill(&storage, host: source, port: 0)
        let result = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard result == 0 else {
            let error = errno
            close(fd)
            throw TestProcess.Failure("cannot bind a UDP socket to \(source) (errno \(error))")
        }
    }

    deinit { close(fd) }

    /// Sends one datagram; returns whether the kernel took it.
    @discardableResult
    public func send(_ bytes: [UInt8], to host: String, port: UInt16) -> Bool {
        var storage = sockaddr_storage()
        let length = Self.fill(&storage, host: host, port: port)
        let sent = bytes.withUnsafeBytes { raw in
            withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, raw.baseAddress, raw.count, 0, $0, length) }
            }
        }
        return sent == bytes.count
    }

    static func fill(_ storage: inout sockaddr_storage, host: String, port: UInt16) -> socklen_t {
        if host.contains(":") {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            _ = inet_pton(AF_INET6, host, &a.sin6_addr)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: a, as: sockaddr_in6.self) }
            return socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        _ = inet_pton(AF_INET, host, &a.sin_addr)
        withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: a, as: sockaddr_in.self) }
        return socklen_t(MemoryLayout<sockaddr_in>.size)
    }
}
