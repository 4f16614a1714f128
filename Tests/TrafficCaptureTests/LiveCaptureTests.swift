import Foundation
import Testing
import TrafficCapture
import TrafficCore
import TrafficTestSupport
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

/// A TCP listener on `address` that answers one connection with an HTTP/1.0 response of
/// `bodySize` bytes, on its own thread. Its port is below the ephemeral range, so it is
/// the server side.
private final class BulkSender: @unchecked Sendable {
    let fd: Int32
    let port: UInt16

    init(address: UInt32, bodySize: Int) throws {
        var attempt: (Int32, UInt16)?
        for _ in 0..<50 where attempt == nil {
            attempt = try? Self.listener(address: address, port: UInt16.random(in: 20_000...32_000))
        }
        guard let (descriptor, port) = attempt else { throw POSIXError(.EADDRINUSE) }
        fd = descriptor
        self.port = port
        Self.serve(descriptor, bodySize: bodySize)
    }

    private static func listener(address: UInt32, port: UInt16) throws -> (Int32, UInt16) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var one: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = address.bigEndian
        sa.sin_port = port.bigEndian
        let bound = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, 1) == 0 else {
            close(descriptor)
            throw POSIXError(.EADDRINUSE)
        }
        return (descriptor, port)
    }

    private static func serve(_ descriptor: Int32, bodySize: Int) {
        let body = [UInt8](repeating: 0x42, count: bodySize)
        let header = Array("HTTP/1.0 200 OK\r\nContent-Length: \(bodySize)\r\n\r\n".utf8)
        Thread.detachNewThread {
            let connection = accept(descriptor, nil, nil)
            guard connection >= 0 else { return }
            // Read the request first: closing with unread data would reset the connection.
            var request = [UInt8](repeating: 0, count: 4096)
            _ = read(connection, &request, request.count)
            for chunk in [header, body] {
                var offset = 0
                while offset < chunk.count {
                    let n = chunk[offset...].withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
                    if n <= 0 { break }
                    offset += n
                }
            }
            shutdown(connection, Int32(SHUT_WR))
            while read(connection, &request, request.count) > 0 {}
            close(connection)
        }
    }

    deinit { close(fd) }
}

@Suite(.serialized) struct LiveCaptureTests {
    /// Two interfaces (the ends of two veth pairs) captured at once, each through two
    /// handles in a PACKET_FANOUT group, feed one set of windows: every frame sent into
    /// either pair is counted once, exactly (per flow, per interface, in total), and the
    /// records and the handles show both interfaces.
    @Test(.enabled(if: canCapture && TestProcess.which("ip") != nil, "needs capture rights and ip"), .timeLimit(.minutes(TestTimeLimit.minutes)))
    func twoInterfacesWithTwoHandlesEachCountEveryFrameOnce() throws {
        let tag = String(getpid() % 100_000)
        let pairs = [("tmfa\(tag)", "tmfb\(tag)"), ("tmga\(tag)", "tmgb\(tag)")]
        func ip(_ arguments: [String]) throws {
            let result = try TestProcess.run(URL(fileURLWithPath: TestProcess.which("ip") ?? "/usr/sbin/ip"), arguments, timeout: 30)
            try #require(result.status == 0, "ip \(arguments.joined(separator: " ")): \(result.stderr)")
        }
        defer { for (a, _) in pairs { _ = try? TestProcess.run(URL(fileURLWithPath: "/usr/sbin/ip"), ["link", "del", a]) } }
        for (a, b) in pairs {
            try ip(["link", "add", a, "type", "veth", "peer", "name", b])
            // No IPv6 on either end: the kernel then sends nothing of its own into the pair.
            for name in [a, b] {
                try? "1".write(toFile: "/proc/sys/net/ipv6/conf/\(name)/disable_ipv6", atomically: false, encoding: .utf8)
                try ip(["link", "set", name, "up"])
            }
        }
        var sources: [PacketSource] = []
        for (a, _) in pairs {
            var options = PacketSource.LiveOptions(interface: a)
            options.immediateMode = true
            options.bufferSize = 4 << 20
            sources += try PacketSource.openFanout(options, handles: 2)
        }
        #expect(sources.count == 4)
        let local = LocalNetworks(try SyntheticTraffic.localNetworks.map { try NetworkPrefix(parsing: $0) })
        let records = LockedValue<[WindowRecord]>([])
        let engine = CaptureEngine(sources: sources, configuration: .init(windowLength: 1_000_000_000, localNetworks: local)) { closed in
            let record = closed.record()
            closed.recycle()
            records.withLock { $0.append(record) }
        }
        #expect(engine.interfaces == pairs.map(\.0))
        engine.start()
        let started = Date()
        while engine.status != .capturing && Date().timeIntervalSince(started) < 5 { usleep(10_000) }
        #expect(engine.status == .capturing)

        // Different traffic into each pair, not cut: every frame is attributed or bucketed as built.
        let traffic = [SyntheticTraffic(packets: 3_000, clients: 200, seed: 61), SyntheticTraffic(packets: 2_000, clients: 100, seed: 62)]
        for ((_, b), t) in zip(pairs, traffic) {
            let injector = try PacketInjector(interface: b)
            for frame in t.frames { #expect(injector.send(frame.bytes)) }
        }
        // Every frame counted before the windows close.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let counted = records.withLock { $0.reduce(UInt64(0)) { $0 + $1.capture.received } }
            if counted >= 5_000 { break }
            usleep(100_000)
        }
        let handles = try String(contentsOfFile: "/proc/net/packet", encoding: .utf8).split(separator: "\n").count - 1
        #expect(handles >= 4, "four packet sockets receive (\(handles) in /proc/net/packet)")
        let stopped = DispatchSemaphore(value: 0)
        Task {
            await engine.stop(timeout: .seconds(5))
            stopped.signal()
        }
        stopped.wait()

        let all = records.withLock { $0 }
        var perInterface: [String: UInt64] = [:]
        for r in all {
            #expect(r.isConserved)
            #expect(r.capture.interfaces.map(\.name) == pairs.map(\.0))
            for input in r.capture.interfaces { perInterface[input.name, default: 0] += input.received }
        }
        #expect(perInterface == [pairs[0].0: 3_000, pairs[1].0: 2_000])
        #expect(all.reduce(UInt64(0)) { $0 + $1.packets } == 5_000)
        // Per flow and per bucket, both captures together (their timestamps are the send times).
        var truth = traffic[0].truth
        let second = traffic[1].truth
        truth.flows.merge(second.flows) { $0 + $1 }
        truth.serverFlows.merge(second.serverFlows) { $0 + $1 }
        #expect(SyntheticTraffic.flows(in: all) == truth.flows)
        #expect(SyntheticTraffic.serverFlows(in: all) == truth.serverFlows)
        // Non-IP frames (ARP) go out unpadded: their wire length is what was sent.
        let arp = (traffic[0].frames + traffic[1].frames).filter(\.isNonIP)
        #expect(all.reduce(Counts()) { $0 + $1.nonIP } == Counts(packets: UInt64(arp.count), bytes: arp.reduce(0) { $0 + UInt64($1.bytes.count) }))
        #expect(all.reduce(UInt64(0)) { $0 + $1.malformed.packets } == traffic[0].truth.malformed.packets + second.malformed.packets)
    }

    /// A host that captures while it sends with segmentation offload (TSO/GSO) on sees
    /// frames far longer than its MTU: they are counted as oversized (and still counted
    /// in full). With offload off (ethtool -K IF tso off gso off gro off) every frame fits.
    /// A veth pair into a network namespace stands in for the link.
    @Test(.enabled(if: canCapture && ["ip", "ethtool", "curl"].allSatisfy { TestProcess.which($0) != nil },
                   "needs capture rights, ip, ethtool and curl"),
          .timeLimit(.minutes(TestTimeLimit.minutes)))
    func segmentationOffloadShowsAsOversizedFrames() throws {
        let tag = String(getpid() % 100_000)
        let namespace = "tm-offload-\(tag)", host = "tmoh\(tag)", peer = "tmop\(tag)"
        func sh(_ arguments: [String]) throws {
            let result = try TestProcess.run(URL(fileURLWithPath: TestProcess.which(arguments[0]) ?? arguments[0]), Array(arguments.dropFirst()), timeout: 30)
            try #require(result.status == 0, "\(arguments.joined(separator: " ")): \(result.stderr)")
        }
        defer {
            _ = try? TestProcess.run(URL(fileURLWithPath: "/usr/sbin/ip"), ["netns", "del", namespace])
            _ = try? TestProcess.run(URL(fileURLWithPath: "/usr/sbin/ip"), ["link", "del", host])
        }
        try sh(["ip", "netns", "add", namespace])
        try sh(["ip", "link", "add", host, "type", "veth", "peer", "name", peer])
        try sh(["ip", "link", "set", peer, "netns", namespace])
        try sh(["ip", "-n", namespace, "addr", "add", "10.213.0.1/24", "dev", peer])
        try sh(["ip", "-n", namespace, "link", "set", peer, "up"])
        try sh(["ip", "addr", "add", "10.213.0.2/24", "dev", host])
        try sh(["ip", "link", "set", host, "mtu", "1500", "up"])

        for offload in [true, false] {
            let state = offload ? "on" : "off"
            try sh(["ethtool", "-K", host, "tso", state, "gso", state, "gro", state])
            let sender = try BulkSender(address: 0x0AD5_0002, bodySize: 3 << 20)
            var options = PacketSource.LiveOptions(interface: host)
            options.filter = "tcp port \(sender.port)"
            options.immediateMode = true
            options.snapshotLength = 96
            let source = try PacketSource.openLive(options)
            #expect(source.oversizedAbove == 1500 + 22)
            var records: [WindowRecord] = []
            let aggregator = WindowAggregator(
                configuration: .init(localNetworks: LocalNetworks([NetworkPrefix(address: IPAddress(ipv4: 0x0AD5_0002), length: 32)]),
                                     oversizedAbove: source.oversizedAbove)
            ) { (record: WindowRecord) in records.append(record) }
            let pump = try PacketPump(source: source, aggregator: aggregator)
            let fetched = LockedValue<TestProcess.Result?>(nil)
            let port = sender.port
            Thread.detachNewThread {
                let result = try? TestProcess.run(
                    URL(fileURLWithPath: TestProcess.which("ip") ?? "/usr/sbin/ip"),
                    ["netns", "exec", namespace, "curl", "-s", "-o", "/dev/null", "--max-time", "20", "http://10.213.0.2:\(port)/"],
                    timeout: 30)
                fetched.withLock { $0 = result ?? TestProcess.Result(status: -1, stdout: Data(), stderr: "curl did not run") }
            }
            let deadline = Date().addingTimeInterval(25)
            while fetched.withLock({ $0 }) == nil && Date() < deadline {
                if try pump.dispatch(maxPackets: -1) == 0 { usleep(5_000) }
            }
            usleep(200_000)
            try pump.dispatch(maxPackets: -1)
            aggregator.finish()
            #expect(fetched.withLock { $0?.status } == 0, "curl: \(fetched.withLock { $0?.stderr } ?? "")")

            let oversized = records.reduce(UInt64(0)) { $0 + $1.capture.oversized }
            let sent = records.reduce(Counts()) { $0 + ($1.servers.first { $0.ip == IPAddress("10.213.0.2")! }?.out ?? .zero) }
            #expect(sent.bytes > 3 << 20, "the whole body is counted (wire bytes)")
            for r in records { #expect(r.isConserved) }
            if offload {
                #expect(oversized > 0, "offload on: merged frames are oversized")
                #expect(sent.packets < (3 << 20) / 1448, "fewer frames than segments: they were merged")
            } else {
                #expect(oversized == 0, "offload off: every frame fits the MTU")
                #expect(sent.packets >= (3 << 20) / 1448)
            }
        }
    }

    @Test(.enabled(if: canCapture, "capturing on lo needs root or CAP_NET_RAW"), .timeLimit(.minutes(TestTimeLimit.minutes)))
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
