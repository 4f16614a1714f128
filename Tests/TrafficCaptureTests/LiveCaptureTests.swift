import Foundation
import Testing
import TrafficCapture
import TrafficCore
#if canImport(Glibc)
import Glibc
#endif

/// Capturing needs root or CAP_NET_RAW: these tests run only where `openLive` on "lo" works.
let canCapture: Bool = {
    var options = PacketSource.LiveOptions(interface: "lo")
    options.bufferSize = 1 << 20
    return (try? PacketSource.openLive(options)) != nil
}()

/// A network interface the kernel reports down (IFF_UP clear in /sys/class/net/NAME/flags), if any.
let downInterface: String? = {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []
    return names.sorted().first { name in
        guard let text = try? String(contentsOfFile: "/sys/class/net/\(name)/flags", encoding: .utf8),
              let flags = Int(text.trimmingCharacters(in: .whitespacesAndNewlines).dropFirst(2), radix: 16) else { return false }
        return flags & 1 == 0
    }
}()

/// A UDP socket bound to 127.0.0.1 (port 0: any free port).
private final class UDPSocket {
    let fd: Int32
    let port: UInt16

    init(port requested: UInt16) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = Self.loopback(port: requested)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            let code = errno
            close(descriptor)
            throw POSIXError(.init(rawValue: code) ?? .EADDRINUSE)
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        fd = descriptor
        port = UInt16(bigEndian: actual.sin_port)
    }

    deinit { close(fd) }

    static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }

    /// Sends `payload` bytes to 127.0.0.1:`port`; returns the bytes sent.
    func send(_ payload: [UInt8], to port: UInt16) -> Int {
        var address = Self.loopback(port: port)
        return payload.withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }
}

@Suite(.serialized) struct LiveCaptureTests {
    @Test(.enabled(if: canCapture, "capturing on lo needs root or CAP_NET_RAW"), .timeLimit(.minutes(1)))
    func loopbackUDPIsCountedExactly() throws {
        // A receiver on a random high port below the ephemeral range (32768+), so the
        // sender's port is always the higher one: the receiver's port is the service.
        var receiver: UDPSocket?
        for _ in 0..<50 where receiver == nil {
            receiver = try? UDPSocket(port: UInt16.random(in: 20_000...32_000))
        }
        let server = try #require(receiver, "no free UDP port")
        let port = server.port
        let sender = try UDPSocket(port: 0)
        try #require(sender.port > port)

        var options = PacketSource.LiveOptions(interface: "lo")
        options.filter = "udp port \(port)"
        options.immediateMode = true
        options.bufferSize = 4 << 20
        let source = try PacketSource.openLive(options)
        #expect(source.origin == .interface("lo"))
        #expect(source.interfaceAddresses.contains(IPAddress("127.0.0.1")!))

        var records: [WindowRecord] = []
        let aggregator = WindowAggregator(configuration: .init()) { (record: WindowRecord) in records.append(record) }
        let pump = try PacketPump(source: source, aggregator: aggregator)

        // K datagrams of known sizes; on lo each is Ethernet 14 + IPv4 20 + UDP 8 + payload.
        let k = 50
        let sizes = (0..<k).map { 1 + ($0 * 37) % 1200 }
        for size in sizes {
            #expect(sender.send([UInt8](repeating: 0x5A, count: size), to: port) == size)
        }
        let expectedBytes = UInt64(sizes.reduce(0) { $0 + 14 + 20 + 8 + $1 })

        let deadline = Date().addingTimeInterval(5)
        while pump.framesRead < UInt64(k) && Date() < deadline {
            if try pump.dispatch(maxPackets: -1) == 0 { usleep(10_000) }
        }
        // Anything extra would show up now.
        usleep(100_000)
        try pump.dispatch(maxPackets: -1)
        aggregator.finish()

        #expect(pump.framesRead == UInt64(k))
        #expect(pump.bytesRead == expectedBytes)
        let packets = records.reduce(UInt64(0)) { $0 + $1.packets }
        let bytes = records.reduce(UInt64(0)) { $0 + $1.bytes }
        #expect(packets == UInt64(k))
        #expect(bytes == expectedBytes)
        for r in records { #expect(r.isConserved) }
        var byService: [String: Counts] = [:]
        for r in records {
            #expect(r.nonIP == .zero)
            #expect(r.malformed.packets == 0)
            for c in r.clients {
                #expect(c.ip == IPAddress("127.0.0.1")!)
                for s in c.services { byService["\(s.service.label) \(s.direction.label)", default: .zero].add(packets: s.packets, bytes: s.bytes) }
            }
        }
        #expect(byService == ["UDP/\(port) in": Counts(packets: UInt64(k), bytes: expectedBytes)])
        let stats = try #require(source.statistics())
        #expect(stats.received >= UInt64(k))
    }

    @Test(.enabled(if: canCapture, "capturing needs root or CAP_NET_RAW"))
    func nonexistentInterfaceIsNamed() {
        let name = "nosuch\(Int.random(in: 100...999))"
        let error = captureError { _ = try PacketSource.openLive(.init(interface: name)) }
        #expect(error == .noSuchInterface(name))
        #expect(error?.description.contains(name) == true)
    }

    @Test(.enabled(if: canCapture && downInterface != nil, "needs capture rights and an interface that is down"))
    func downInterfaceIsNamed() throws {
        let name = try #require(downInterface)
        var options = PacketSource.LiveOptions(interface: name)
        options.bufferSize = 1 << 20
        let error = captureError { _ = try PacketSource.openLive(options) }
        #expect(error == .interfaceDown(name))
    }

    @Test(.enabled(if: canCapture, "capturing needs root or CAP_NET_RAW"))
    func badLiveFilterIsRefused() {
        var options = PacketSource.LiveOptions(interface: "lo")
        options.filter = "udp port"
        options.bufferSize = 1 << 20
        let error = captureError { _ = try PacketSource.openLive(options) }
        guard case .badFilter(let filter, _)? = error else {
            Issue.record("expected badFilter, got \(String(describing: error))")
            return
        }
        #expect(filter == "udp port")
    }

    @Test func loopbackIsListed() throws {
        let devices = try InterfaceInfo.list()
        let lo = try #require(devices.first { $0.name == "lo" })
        #expect(lo.isLoopback)
        #expect(lo.addresses.contains(IPAddress("127.0.0.1")!))
    }
}
