import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A bare TCP client to 127.0.0.1 for hand-made HTTP and WebSocket clients: it does the
/// WebSocket handshake itself (to see the HTTP status of a refused upgrade), plays a
/// client that never reads (a tiny receive buffer), sends half a request, or vanishes
/// (a close without a WebSocket close frame, or a reset).
public final class RawSocket: @unchecked Sendable {
    public let fd: Int32
    private var closed = false

    /// Connects to 127.0.0.1:`port`; `receiveBuffer` (bytes) is set before connecting,
    /// `receiveTimeout` (seconds) bounds each blocking read.
    public init(port: Int, receiveBuffer: Int32? = nil, receiveTimeout: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else {
            closed = true
            throw TestProcess.Failure("cannot make a socket (errno \(errno))")
        }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let error = errno
            // Through disconnect, so that deinit (which runs when an initializer throws
            // after every property is set) does not close the number again, by then
            // perhaps another thread's descriptor.
            disconnect()
            throw TestProcess.Failure("cannot connect to port \(port) (errno \(error))")
        }
        var timeout = timeval(tv_sec: receiveTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { disconnect() }

    /// Resets the connection (SO_LINGER 0, then close: the peer gets an RST), as when a
    /// client process dies with unread data or a middlebox drops the connection.
    public func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        disconnect()
    }

    /// Closes the connection at once (no WebSocket close frame): a client that vanishes.
    public func disconnect() {
        if !closed {
            closed = true
            close(fd)
        }
    }

    public func send(_ text: String) {
        send(bytes: Array(text.utf8))
    }

    /// Sends `bytes`; false when the connection failed before all of them went out (the
    /// peer may still have answered: a server can reply and close before reading a body).
    @discardableResult
    public func send(bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    /// Reads what has arrived, up to `limit` bytes, waiting up to the receive timeout for
    /// the first of them: empty at EOF; throws on an error or the timeout.
    public func receive(limit: Int = 1 << 16) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: limit)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n >= 0 else {
            let reason = errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : String(cString: strerror(errno))
            throw TestProcess.Failure("receiving from the socket: \(reason)")
        }
        return Array(buffer[0..<n])
    }

    /// Reads a response head byte by byte, up to the blank line (so no frame that follows
    /// is consumed), or what came before EOF, an error or the receive timeout.
    public func readHead() -> String {
        var head = [UInt8]()
        var byte: UInt8 = 0
        while !(head.count >= 4 && head.suffix(4) == [13, 10, 13, 10]) {
            if recv(fd, &byte, 1, 0) <= 0 { break }
            head.append(byte)
        }
        return String(decoding: head, as: UTF8.self)
    }

    /// Sends an upgrade request for `path` and reads the response head. Returns the status
    /// code and the head.
    public func upgrade(path: String, port: Int, headers: [String] = []) -> (status: Int, head: String) {
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for header in headers { request += header + "\r\n" }
        request += "\r\n"
        send(request)
        let text = readHead()
        let parts = text.split(separator: " ", maxSplits: 2)
        let status = parts.count >= 2 ? Int(parts[1]) ?? 0 : 0
        return (status, text)
    }

    /// Reads whatever arrives until EOF, an error, or `quiet` seconds without data.
    public func drain(quiet: Double = 3, limit: TimeInterval = 30) -> (bytes: [UInt8], eof: Bool) {
        var all = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let deadline = Date().addingTimeInterval(limit)
        while Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, Int32(quiet * 1000))
            if ready <= 0 { return (all, false) }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return (all, true) }
            if n < 0 { return (all, errno != EAGAIN) }
            all += buffer[0..<n]
        }
        return (all, false)
    }

    // MARK: Off the cooperative pool

    /// `readHead` off the cooperative pool.
    public func head() async throws -> String {
        try await TestProcess.offload { self.readHead() }
    }

    /// `upgrade` off the cooperative pool.
    public func upgraded(path: String, port: Int, headers: [String] = []) async throws -> (status: Int, head: String) {
        try await TestProcess.offload { self.upgrade(path: path, port: port, headers: headers) }
    }

    /// `drain` off the cooperative pool.
    public func drained(quiet: Double = 3, limit: TimeInterval = 30) async throws -> (bytes: [UInt8], eof: Bool) {
        try await TestProcess.offload { self.drain(quiet: quiet, limit: limit) }
    }

    // MARK: WebSocket frames

    /// Server-to-client WebSocket frames (unmasked) in `bytes`: opcode and payload, with
    /// fragmented messages joined.
    public static func frames(_ bytes: [UInt8]) -> [(opcode: UInt8, payload: [UInt8])] {
        var out: [(UInt8, [UInt8])] = []
        var i = 0
        var message: [UInt8] = []
        var messageOpcode: UInt8 = 0
        while i + 2 <= bytes.count {
            let fin = bytes[i] & 0x80 != 0
            let opcode = bytes[i] & 0x0F
            var length = Int(bytes[i + 1] & 0x7F)
            var offset = i + 2
            if length == 126 {
                guard offset + 2 <= bytes.count else { break }
                length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
                offset += 2
            } else if length == 127 {
                guard offset + 8 <= bytes.count else { break }
                length = bytes[offset..<(offset + 8)].reduce(0) { $0 << 8 | Int($1) }
                offset += 8
            }
            guard offset + length <= bytes.count else { break }
            let payload = Array(bytes[offset..<(offset + length)])
            i = offset + length
            if opcode >= 8 {
                out.append((opcode, payload))
            } else {
                if opcode != 0 { messageOpcode = opcode; message = [] }
                message += payload
                if fin { out.append((messageOpcode, message)); message = [] }
            }
        }
        return out
    }
}
