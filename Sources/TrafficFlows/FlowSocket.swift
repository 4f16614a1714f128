import Foundation
import TrafficCore

/// The UDP socket of a flow collector: bound to its listen address (`:PORT` takes IPv4 and
/// IPv6 on one dual-stack socket), non-blocking, with a large receive buffer so that an
/// exporter's burst waits in the kernel rather than being lost (`SO_RCVBUFFORCE` as root,
/// past `net.core.rmem_max`; else `SO_RCVBUF`, capped by it), and the kernel's count of
/// datagrams dropped for a full buffer delivered with each datagram (`SO_RXQ_OVFL`).
/// Datagrams are read one `recvmsg` each into a buffer allocated once.
///
/// ```swift
/// let socket = try FlowSocket(listen: try FlowListenAddress(parsing: ":2055"), receiveBuffer: 32 << 20)
/// socket.receive { datagram, sender in decode(datagram, sender) }
/// ```
final class FlowSocket: @unchecked Sendable {
    let descriptor: Int32
    /// The receive buffer the kernel granted (what `SO_RCVBUF` was set to; the kernel
    /// reserves twice that for its bookkeeping).
    let receiveBuffer: Int
    /// The port bound (the one asked for, or the kernel's choice for port 0).
    let port: UInt16
    /// Datagrams the kernel dropped since the socket opened (full receive buffer), as the
    /// last datagram's `SO_RXQ_OVFL` said.
    private(set) var kernelDrops: UInt64 = 0
    private var lastDropCount: UInt32 = 0

    /// Datagrams read per `receive` call at most.
    static let batch = 32
    /// The largest UDP payload fits.
    static let datagramCapacity = 65_536
    static let controlCapacity = 64
    private let buffer: UnsafeMutableRawPointer
    private let sender: UnsafeMutablePointer<sockaddr_storage>
    private let control: UnsafeMutableRawPointer
    private let vector: UnsafeMutablePointer<iovec>

    init(listen: FlowListenAddress, receiveBuffer wanted: Int) throws(InputFailure) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var found: UnsafeMutablePointer<addrinfo>?
        // Every address: a dual-stack IPv6 socket (IPv4 senders appear as ::ffff:a.b.c.d).
        let host = listen.host.isEmpty ? "::" : listen.host
        let status = getaddrinfo(host, String(listen.port), &hints, &found)
        guard status == 0, let info = found else {
            throw InputFailure("cannot listen for flows on \(listen): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(found) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw InputFailure("cannot open a UDP socket for \(listen): \(String(cString: strerror(errno)))") }
        var off: Int32 = 0, on: Int32 = 1
        if info.pointee.ai_family == AF_INET6 {
            _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size))
        }
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let reason = errno == EADDRINUSE ? "the port is already in use" : String(cString: strerror(errno))
            close(fd)
            throw InputFailure("cannot listen for flows on \(listen): \(reason)")
        }
        var size = Int32(clamping: wanted)
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var granted: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &length)
        receiveBuffer = Int(granted) / 2
        _ = setsockopt(fd, SOL_SOCKET, Self.rxqOverflow, &on, socklen_t(MemoryLayout<Int32>.size))
        var bound = sockaddr_storage()
        var boundLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &boundLength) }
        }
        port = Self.port(of: bound)
        descriptor = fd

        buffer = .allocate(byteCount: Self.datagramCapacity, alignment: 16)
        sender = .allocate(capacity: 1)
        control = .allocate(byteCount: Self.controlCapacity, alignment: 16)
        vector = .allocate(capacity: 1)
    }

    deinit {
        close(descriptor)
        buffer.deallocate()
        sender.deallocate()
        control.deallocate()
        vector.deallocate()
    }

    /// `SO_RXQ_OVFL` (Linux).
    static let rxqOverflow: Int32 = 40

    /// Reads the datagrams waiting (at most `batch`) and hands each with its sender to
    /// `body`. Returns how many were read (0 when none waited).
    func receive(_ body: (UnsafeRawBufferPointer, IPAddress) -> Void) throws(InputFailure) -> Int {
        var read = 0
        while read < Self.batch {
            vector.pointee = iovec(iov_base: buffer, iov_len: Self.datagramCapacity)
            var header = msghdr()
            header.msg_name = UnsafeMutableRawPointer(sender)
            header.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            header.msg_iov = vector
            header.msg_iovlen = 1
            header.msg_control = control
            header.msg_controllen = Self.controlCapacity
            let n = recvmsg(descriptor, &header, Int32(MSG_DONTWAIT))
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { break }
                throw InputFailure("reading the flow socket failed: \(String(cString: strerror(errno)))")
            }
            read += 1
            noteControl(header)
            guard let address = Self.address(of: sender.pointee) else { continue }
            body(UnsafeRawBufferPointer(start: buffer, count: n), address)
        }
        return read
    }

    /// Reads `SO_RXQ_OVFL`'s drop count from a message's control data.
    private func noteControl(_ header: msghdr) {
        guard let control = header.msg_control else { return }
        let headerSize = MemoryLayout<cmsghdr>.size
        var offset = 0
        while offset + headerSize <= Int(header.msg_controllen) {
            let message = (control + offset).loadUnaligned(as: cmsghdr.self)
            let length = Int(message.cmsg_len)
            guard length >= headerSize, offset + length <= Int(header.msg_controllen) else { return }
            if message.cmsg_level == SOL_SOCKET, message.cmsg_type == Self.rxqOverflow, length >= headerSize + 4 {
                // A 32-bit running count: add what it grew by (across a wrap too).
                let drops = (control + offset + headerSize).loadUnaligned(as: UInt32.self)
                kernelDrops &+= UInt64(drops &- lastDropCount)
                lastDropCount = drops
            }
            offset += (length + 7) & ~7
        }
    }

    /// A sender's address; an IPv4 sender on a dual-stack socket (`::ffff:a.b.c.d`) as IPv4.
    static func address(of storage: sockaddr_storage) -> IPAddress? {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafeBytes(of: &storage) { raw in
                IPAddress(ipv4: UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
            }
        case AF_INET6:
            return withUnsafeBytes(of: &storage) { raw in
                let high = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                let low = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
                if high == 0 && low >> 32 == 0xFFFF { return IPAddress(ipv4: UInt32(truncatingIfNeeded: low)) }
                return IPAddress(ipv6High: high, low: low)
            }
        default:
            return nil
        }
    }

    static func port(of storage: sockaddr_storage) -> UInt16 {
        var storage = storage
        return withUnsafeBytes(of: &storage) { UInt16(bigEndian: $0.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) }
    }
}
