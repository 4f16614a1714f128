import Testing
@testable import TrafficCore
import TrafficTestSupport

/// One packet and the attribution DESIGN.md's rule gives it.
struct AttributionCase: Sendable, CustomTestStringConvertible {
    let name: String
    let source: String
    let sourcePort: UInt16?
    let destination: String
    let destinationPort: UInt16?
    var proto: UInt8 = IPProtocol.tcp
    var laterFragment = false
    /// An ICMP/ICMPv6 reply or error.
    var reply = false
    let client: String
    let server: String
    let direction: Direction
    let service: String
    var testDescription: String { name }
}

@Suite("Attributor: client, server, direction, service")
struct AttributorTests {
    /// Local: 10.0.0.0/8, 192.168.1.0/24 and 2001:db8:1::/48.
    static let local = LocalNetworks([
        NetworkPrefix(address: IPAddress(ipv4: 0x0A00_0000), length: 8),
        NetworkPrefix(address: IPAddress(ipv4: 0xC0A8_0100), length: 24),
        NetworkPrefix(address: IPAddress(ipv6High: 0x2001_0DB8_0001_0000, low: 0), length: 48),
    ])
    static let attributor = Attributor(localNetworks: local)

    static let cases: [AttributionCase] = [
        // Watching servers: remote clients, local services.
        AttributionCase(name: "server: remote client -> local server", source: "198.51.100.7", sourcePort: 50000,
                        destination: "10.0.0.1", destinationPort: 443,
                        client: "198.51.100.7", server: "10.0.0.1", direction: .inbound, service: "TCP/443"),
        AttributionCase(name: "server: local server answers", source: "10.0.0.1", sourcePort: 443,
                        destination: "198.51.100.7", destinationPort: 50000,
                        client: "198.51.100.7", server: "10.0.0.1", direction: .outbound, service: "TCP/443"),
        // Watching an uplink: local clients, remote services.
        AttributionCase(name: "uplink: office machine -> remote web server", source: "192.168.1.10", sourcePort: 51234,
                        destination: "142.250.1.1", destinationPort: 443,
                        client: "192.168.1.10", server: "142.250.1.1", direction: .outbound, service: "TCP/443"),
        AttributionCase(name: "uplink: the web server answers", source: "142.250.1.1", sourcePort: 443,
                        destination: "192.168.1.10", destinationPort: 51234,
                        client: "192.168.1.10", server: "142.250.1.1", direction: .inbound, service: "TCP/443"),
        AttributionCase(name: "uplink: DNS query", source: "192.168.1.10", sourcePort: 40000,
                        destination: "8.8.8.8", destinationPort: 53, proto: IPProtocol.udp,
                        client: "192.168.1.10", server: "8.8.8.8", direction: .outbound, service: "UDP/53"),
        AttributionCase(name: "uplink: DNS answer", source: "8.8.8.8", sourcePort: 53,
                        destination: "192.168.1.10", destinationPort: 40000, proto: IPProtocol.udp,
                        client: "192.168.1.10", server: "8.8.8.8", direction: .inbound, service: "UDP/53"),
        // The lower port is the server whatever is local.
        AttributionCase(name: "a remote low port is the server of a local high port", source: "198.51.100.7", sourcePort: 53,
                        destination: "10.0.0.1", destinationPort: 40000, proto: IPProtocol.udp,
                        client: "10.0.0.1", server: "198.51.100.7", direction: .inbound, service: "UDP/53"),
        // Both local: in = towards the server.
        AttributionCase(name: "both local, to the server", source: "10.0.0.2", sourcePort: 50000,
                        destination: "10.0.0.1", destinationPort: 443,
                        client: "10.0.0.2", server: "10.0.0.1", direction: .inbound, service: "TCP/443"),
        AttributionCase(name: "both local, from the server", source: "10.0.0.1", sourcePort: 443,
                        destination: "10.0.0.2", destinationPort: 50000,
                        client: "10.0.0.2", server: "10.0.0.1", direction: .outbound, service: "TCP/443"),
        AttributionCase(name: "both local across prefixes", source: "192.168.1.5", sourcePort: 2905,
                        destination: "10.9.9.9", destinationPort: 30000, proto: IPProtocol.sctp,
                        client: "10.9.9.9", server: "192.168.1.5", direction: .outbound, service: "SCTP/2905"),
        // Neither local (a mirror of someone else's traffic): in = towards the server.
        AttributionCase(name: "neither local, to the server", source: "192.0.2.1", sourcePort: 1234,
                        destination: "198.51.100.1", destinationPort: 80,
                        client: "192.0.2.1", server: "198.51.100.1", direction: .inbound, service: "TCP/80"),
        AttributionCase(name: "neither local, from the server", source: "198.51.100.1", sourcePort: 80,
                        destination: "192.0.2.1", destinationPort: 1234,
                        client: "192.0.2.1", server: "198.51.100.1", direction: .outbound, service: "TCP/80"),
        AttributionCase(name: "ports 1 and 65535", source: "192.0.2.1", sourcePort: 1,
                        destination: "198.51.100.1", destinationPort: 65535, proto: IPProtocol.udp,
                        client: "198.51.100.1", server: "192.0.2.1", direction: .outbound, service: "UDP/1"),
        // Equal ports: the destination is the server.
        AttributionCase(name: "equal ports, neither local", source: "192.0.2.1", sourcePort: 5000,
                        destination: "198.51.100.1", destinationPort: 5000, proto: IPProtocol.udp,
                        client: "192.0.2.1", server: "198.51.100.1", direction: .inbound, service: "UDP/5000"),
        AttributionCase(name: "equal ports, both local", source: "10.0.0.1", sourcePort: 123,
                        destination: "10.0.0.2", destinationPort: 123, proto: IPProtocol.udp,
                        client: "10.0.0.1", server: "10.0.0.2", direction: .inbound, service: "UDP/123"),
        AttributionCase(name: "equal ports, uplink: the remote destination", source: "192.168.1.10", sourcePort: 123,
                        destination: "162.159.200.1", destinationPort: 123, proto: IPProtocol.udp,
                        client: "192.168.1.10", server: "162.159.200.1", direction: .outbound, service: "UDP/123"),
        // No ports: the destination, except ICMP replies and errors (their source).
        AttributionCase(name: "ICMP request, neither local", source: "192.0.2.1", sourcePort: nil,
                        destination: "198.51.100.1", destinationPort: nil, proto: IPProtocol.icmp,
                        client: "192.0.2.1", server: "198.51.100.1", direction: .inbound, service: "ICMP"),
        AttributionCase(name: "ICMP request, both local", source: "10.0.0.1", sourcePort: nil,
                        destination: "10.0.0.2", destinationPort: nil, proto: IPProtocol.icmp,
                        client: "10.0.0.1", server: "10.0.0.2", direction: .inbound, service: "ICMP"),
        AttributionCase(name: "ICMP request to a local host", source: "198.51.100.7", sourcePort: nil,
                        destination: "10.0.0.1", destinationPort: nil, proto: IPProtocol.icmp,
                        client: "198.51.100.7", server: "10.0.0.1", direction: .inbound, service: "ICMP"),
        AttributionCase(name: "ICMP reply from a local host", source: "10.0.0.1", sourcePort: nil,
                        destination: "198.51.100.7", destinationPort: nil, proto: IPProtocol.icmp, reply: true,
                        client: "198.51.100.7", server: "10.0.0.1", direction: .outbound, service: "ICMP"),
        AttributionCase(name: "uplink ping out", source: "192.168.1.10", sourcePort: nil,
                        destination: "8.8.8.8", destinationPort: nil, proto: IPProtocol.icmp,
                        client: "192.168.1.10", server: "8.8.8.8", direction: .outbound, service: "ICMP"),
        AttributionCase(name: "uplink ping answered", source: "8.8.8.8", sourcePort: nil,
                        destination: "192.168.1.10", destinationPort: nil, proto: IPProtocol.icmp, reply: true,
                        client: "192.168.1.10", server: "8.8.8.8", direction: .inbound, service: "ICMP"),
        AttributionCase(name: "GRE from local: the destination", source: "10.0.0.1", sourcePort: nil,
                        destination: "203.0.113.1", destinationPort: nil, proto: IPProtocol.gre,
                        client: "10.0.0.1", server: "203.0.113.1", direction: .outbound, service: "GRE"),
        // Non-first fragments: no ports, the protocol name alone.
        AttributionCase(name: "later UDP fragment to local", source: "198.51.100.7", sourcePort: nil,
                        destination: "10.0.0.1", destinationPort: nil, proto: IPProtocol.udp, laterFragment: true,
                        client: "198.51.100.7", server: "10.0.0.1", direction: .inbound, service: "UDP"),
        AttributionCase(name: "later TCP fragment from local", source: "10.0.0.1", sourcePort: nil,
                        destination: "198.51.100.7", destinationPort: nil, proto: IPProtocol.tcp, laterFragment: true,
                        client: "10.0.0.1", server: "198.51.100.7", direction: .outbound, service: "TCP"),
        AttributionCase(name: "later UDP fragment, neither local", source: "192.0.2.1", sourcePort: nil,
                        destination: "198.51.100.1", destinationPort: nil, proto: IPProtocol.udp, laterFragment: true,
                        client: "192.0.2.1", server: "198.51.100.1", direction: .inbound, service: "UDP"),
        // IPv6.
        AttributionCase(name: "IPv6 remote -> local", source: "2001:db8:2::7", sourcePort: 50000,
                        destination: "2001:db8:1::1", destinationPort: 443,
                        client: "2001:db8:2::7", server: "2001:db8:1::1", direction: .inbound, service: "TCP/443"),
        AttributionCase(name: "IPv6 local -> remote", source: "2001:db8:1:ffff::1", sourcePort: 53,
                        destination: "2001:db8:2::7", destinationPort: 33333, proto: IPProtocol.udp,
                        client: "2001:db8:2::7", server: "2001:db8:1:ffff::1", direction: .outbound, service: "UDP/53"),
        AttributionCase(name: "IPv6 just outside the /48", source: "2001:db8:0:ffff::1", sourcePort: 80,
                        destination: "2001:db8:2::7", destinationPort: 33333,
                        client: "2001:db8:2::7", server: "2001:db8:0:ffff::1", direction: .outbound, service: "TCP/80"),
        AttributionCase(name: "IPv6 ICMPv6 request to local", source: "2001:db8:2::7", sourcePort: nil,
                        destination: "2001:db8:1::1", destinationPort: nil, proto: IPProtocol.icmpv6,
                        client: "2001:db8:2::7", server: "2001:db8:1::1", direction: .inbound, service: "ICMPv6"),
        AttributionCase(name: "IPv6 ICMPv6 reply from local", source: "2001:db8:1::1", sourcePort: nil,
                        destination: "2001:db8:2::7", destinationPort: nil, proto: IPProtocol.icmpv6, reply: true,
                        client: "2001:db8:2::7", server: "2001:db8:1::1", direction: .outbound, service: "ICMPv6"),
        AttributionCase(name: "IPv4-mapped IPv6 is not IPv4-local", source: "::ffff:10.0.0.1", sourcePort: 443,
                        destination: "::ffff:198.51.100.7", destinationPort: 50000,
                        client: "::ffff:198.51.100.7", server: "::ffff:10.0.0.1", direction: .outbound, service: "TCP/443"),
    ]

    @Test(arguments: cases)
    func attributes(_ c: AttributionCase) {
        let p = packet(c.source, c.sourcePort, c.destination, c.destinationPort, proto: c.proto, laterFragment: c.laterFragment, reply: c.reply)
        let a = Self.attributor.attribute(p)
        #expect(a == Attribution(client: addr(c.client), server: addr(c.server), direction: c.direction, service: Service(label: c.service)!))
    }

    @Test func withoutLocalNetworksTowardsTheServerIsIn() {
        // A mirror port with no --local-net: 10.0.0.1 is not special any more.
        let plain = Attributor(localNetworks: LocalNetworks())
        let a = plain.attribute(packet("198.51.100.7", 53, "10.0.0.1", 40000, proto: IPProtocol.udp))
        #expect(a == Attribution(
            client: addr("10.0.0.1"), server: addr("198.51.100.7"), direction: .outbound, service: Service(ipProtocol: IPProtocol.udp, port: 53)))
        let b = plain.attribute(packet("198.51.100.7", 40000, "10.0.0.1", 53, proto: IPProtocol.udp))
        #expect(b == Attribution(
            client: addr("198.51.100.7"), server: addr("10.0.0.1"), direction: .inbound, service: Service(ipProtocol: IPProtocol.udp, port: 53)))
    }

    /// `--service-port UDP/50000`: a service on a high port whose clients use lower ports.
    @Test func aServicePortIsTheServerWheneverItAppears() throws {
        let forced = Attributor(localNetworks: Self.local, servicePorts: try ServicePorts(labels: ["UDP/50000", "tcp/8443"]))
        let query = forced.attribute(packet("198.51.100.7", 33000, "10.0.0.5", 50000, proto: IPProtocol.udp))
        #expect(query == Attribution(
            client: addr("198.51.100.7"), server: addr("10.0.0.5"), direction: .inbound, service: Service(ipProtocol: IPProtocol.udp, port: 50000)))
        let answer = forced.attribute(packet("10.0.0.5", 50000, "198.51.100.7", 33000, proto: IPProtocol.udp))
        #expect(answer == Attribution(
            client: addr("198.51.100.7"), server: addr("10.0.0.5"), direction: .outbound, service: Service(ipProtocol: IPProtocol.udp, port: 50000)))
        // Without the flag the lower port wins.
        #expect(Self.attributor.attribute(packet("198.51.100.7", 33000, "10.0.0.5", 50000, proto: IPProtocol.udp)).service.port == 33000)
        // Only for its protocol; TCP/8443 against a lower client port too.
        #expect(forced.attribute(packet("198.51.100.7", 33000, "10.0.0.5", 50000, proto: IPProtocol.tcp)).service.port == 33000)
        #expect(forced.attribute(packet("10.0.0.5", 8443, "198.51.100.7", 1024, proto: IPProtocol.tcp)).server == addr("10.0.0.5"))
        #expect(try ServicePorts(labels: ["UDP/50000", "UDP/50000"]).labels == ["UDP/50000"])
        for bad in ["UDP", "ICMP", "UDP/0", "UDP/70000", "other", "50000", "GRE/1"] {
            #expect(throws: ServicePortError.self) { try ServicePorts(labels: [bad]) }
        }
    }

    @Test func bothDirectionsOfAConversationHaveTheSameClientAndService() {
        var rng = SplitMix64(seed: 5)
        let attributors = [Self.attributor, Attributor(localNetworks: LocalNetworks())]
        let hosts = ["10.0.0.1", "10.2.3.4", "198.51.100.7", "192.0.2.200", "192.168.1.1"].map(addr)
        for _ in 0..<500 {
            let a = hosts[Int(rng.next() % 5)], b = hosts[Int(rng.next() % 5)]
            guard a != b else { continue }
            let pa = UInt16(truncatingIfNeeded: rng.next() % 65535 + 1), pb = UInt16(truncatingIfNeeded: rng.next() % 65535 + 1)
            guard pa != pb else { continue }
            for attributor in attributors {
                let forward = attributor.attribute(packet(a, pa, b, pb, proto: IPProtocol.tcp))
                let backward = attributor.attribute(packet(b, pb, a, pa, proto: IPProtocol.tcp))
                #expect(forward.client == backward.client)
                #expect(forward.server == backward.server)
                #expect(forward.service == backward.service)
                #expect(forward.direction != backward.direction)
                // The client is one of the two ends, and the service port is one of the two ports.
                #expect([a, b].contains(forward.client) && forward.server.map { [a, b].contains($0) } == true)
                #expect(forward.client != forward.server)
                #expect([pa, pb].contains(forward.service.port!))
            }
        }
    }

    @Test func decodedFramesAreAttributedEndToEnd() throws {
        let frame = FrameBuilder.ethernet(vlans: [7], ip: FrameBuilder.ipv6(
            src: addr("2001:db8:1::53"), dst: addr("2001:db8:9::1"), proto: IPProtocol.udp,
            payload: FrameBuilder.ports(53, 41000), extensions: [(IPProtocol.hopByHop, FrameBuilder.optionsHeader())]))
        let p = decodeExact(frame, link: .ethernet)
        #expect(p.kind == .ip)
        let a = Self.attributor.attribute(p)
        #expect(a == Attribution(
            client: addr("2001:db8:9::1"), server: addr("2001:db8:1::53"), direction: .outbound, service: try #require(Service(label: "UDP/53"))))
        #expect(a.client.description == "2001:db8:9::1")
    }
}

@Suite("Service labels")
struct ServiceLabelTests {
    static let labels: [(UInt8, UInt16?, String)] = [
        (IPProtocol.tcp, 443, "TCP/443"), (IPProtocol.udp, 53, "UDP/53"), (IPProtocol.sctp, 2905, "SCTP/2905"),
        (IPProtocol.tcp, 1, "TCP/1"), (IPProtocol.udp, 65535, "UDP/65535"), (IPProtocol.tcp, 10, "TCP/10"),
        (IPProtocol.tcp, 100, "TCP/100"), (IPProtocol.tcp, 8000, "TCP/8000"), (IPProtocol.udp, 10000, "UDP/10000"),
        (IPProtocol.icmp, nil, "ICMP"), (IPProtocol.icmpv6, nil, "ICMPv6"), (IPProtocol.gre, nil, "GRE"),
        (IPProtocol.esp, nil, "ESP"), (IPProtocol.ah, nil, "AH"), (IPProtocol.igmp, nil, "IGMP"),
        (IPProtocol.tcp, nil, "TCP"), (IPProtocol.udp, nil, "UDP"), (IPProtocol.sctp, nil, "SCTP"),
        (0, nil, "IP/0"), (4, nil, "IP/4"), (41, nil, "IP/41"), (89, nil, "IP/89"), (103, nil, "IP/103"), (255, nil, "IP/255"),
    ]

    static func service(_ proto: UInt8, _ port: UInt16?) -> Service {
        port.map { Service(ipProtocol: proto, port: $0) } ?? Service(ipProtocol: proto)
    }

    @Test(arguments: labels)
    func labelAndParseRoundTrip(proto: UInt8, port: UInt16?, label: String) throws {
        let s = Self.service(proto, port)
        #expect(s.label == label)
        #expect(s.description == label)
        #expect(s.ipProtocol == proto)
        #expect(s.port == port)
        var bytes: [UInt8] = [0x7B]
        s.appendLabel(to: &bytes)
        #expect(bytes == [0x7B] + Array(label.utf8))
        let parsed = try #require(Service(label: label))
        #expect(parsed == s)
        #expect(parsed.label == label)
    }

    @Test func protocolNamesParseCaseInsensitively() {
        #expect(Service(label: "tcp/443") == Service(ipProtocol: IPProtocol.tcp, port: 443))
        #expect(Service(label: "icmpv6") == Service(ipProtocol: IPProtocol.icmpv6))
        #expect(Service(label: "Udp") == Service(ipProtocol: IPProtocol.udp))
    }

    @Test func ipNumberOfANamedProtocolIsThatProtocol() {
        // IP/<n> is the fallback form; a named protocol prints under its name.
        #expect(Service(label: "IP/47")?.label == "GRE")
        #expect(Service(label: "IP/1")?.label == "ICMP")
        #expect(Service(label: "IP/6")?.label == "TCP")
    }

    @Test func otherRoundTrips() {
        #expect(Service.other.label == "other")
        #expect(Service(label: "other") == .other)
        var bytes: [UInt8] = []
        Service.other.appendLabel(to: &bytes)
        #expect(bytes == Array("other".utf8))
        // `other` is no real protocol/port pair.
        for (proto, port, _) in Self.labels { #expect(Self.service(proto, port) != .other) }
    }

    @Test(arguments: ["TCP/0", "TCP/65536", "UDP/99999", "TCP/100000", "TCP/", "FOO/1", "FOO", "IP/256", "IP/", "IP/-1",
                      "IP", "", "/", "/80", "ICMP/1", "GRE/47", "TCP/-1", "TCP/+80", "TCP/ 80", "TCP/80 ", " TCP/80", "TCP/8x",
                      "TCP/0x50", "TCP/٣", "TCP/80/1", "TCP//80", "TCP:80", "OTHER/1", "IP/1000"])
    func rejectsBadLabels(_ label: String) {
        #expect(Service(label: label) == nil)
    }

    @Test func portProtocols() {
        for proto in 0...255 {
            let expected = proto == 6 || proto == 17 || proto == 132
            #expect(Service.hasPorts(UInt8(proto)) == expected, "protocol \(proto)")
        }
    }

    @Test func directionLabels() {
        #expect(Direction.inbound.label == "in")
        #expect(Direction.outbound.label == "out")
        #expect(Direction(label: "in") == .inbound)
        #expect(Direction(label: "out") == .outbound)
        #expect(Direction(label: "IN") == nil)
        #expect(Direction(label: "") == nil)
    }

    @Test func malformedReasonLabels() {
        let expected: [(MalformedReason, String)] = [
            (.truncatedLink, "truncated_link"), (.truncatedIP, "truncated_ip"), (.truncatedTransport, "truncated_transport"),
            (.badVersion, "bad_version"), (.badHeaderLength, "bad_header_length"),
        ]
        #expect(MalformedReason.allCases.count == expected.count)
        for (reason, label) in expected {
            #expect(reason.label == label)
            #expect(MalformedReason(label: label) == reason)
        }
        #expect(MalformedReason(label: "truncated") == nil)
    }
}
