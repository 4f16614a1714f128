/// Who a packet belongs to: the remote client, which way it went, and the service it used.
public struct Attribution: Hashable, Sendable {
    public var client: IPAddress
    public var direction: Direction
    public var service: Service

    public init(client: IPAddress, direction: Direction, service: Service) {
        self.client = client
        self.direction = direction
        self.service = service
    }
}

/// Applies DESIGN.md's attribution rules to decoded IP packets.
///
/// 1. destination local, source not: `in`, client = source, server port = destination port;
/// 2. source local, destination not: `out`, client = destination, server port = source port;
/// 3. both or neither local: the lower port is the server (equal ports or no ports: the
///    destination), and the packet is `in` when it goes to the server.
///
/// ```swift
/// let attributor = Attributor(localNetworks: LocalNetworks([try NetworkPrefix(parsing: "10.0.0.0/8")]))
/// let who = attributor.attribute(packet)   // client, direction, service
/// ```
public struct Attributor: Sendable {
    public var localNetworks: LocalNetworks

    public init(localNetworks: LocalNetworks) {
        self.localNetworks = localNetworks
    }

    /// Attributes an IP packet (`packet.kind == .ip`).
    @inline(__always)
    public func attribute(_ packet: DecodedPacket) -> Attribution {
        let sourceLocal = localNetworks.contains(packet.source)
        let destinationLocal = localNetworks.contains(packet.destination)
        let towardsDestination: Bool
        if destinationLocal != sourceLocal {
            towardsDestination = destinationLocal
        } else if packet.hasPorts {
            towardsDestination = packet.destinationPort <= packet.sourcePort
        } else {
            towardsDestination = true
        }
        let service: Service
        if packet.hasPorts {
            service = Service(
                ipProtocol: packet.ipProtocol,
                port: towardsDestination ? packet.destinationPort : packet.sourcePort)
        } else {
            service = Service(ipProtocol: packet.ipProtocol)
        }
        return towardsDestination
            ? Attribution(client: packet.source, direction: .inbound, service: service)
            : Attribution(client: packet.destination, direction: .outbound, service: service)
    }
}
