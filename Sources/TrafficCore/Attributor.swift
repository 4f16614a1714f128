/// Who a packet belongs to: its client, its server, which way it went, and the service.
public struct Attribution: Hashable, Sendable {
    public var client: IPAddress
    /// `nil` when not known (an inject that names no server): counted among the servers
    /// that are not listed one by one.
    public var server: IPAddress?
    public var direction: Direction
    public var service: Service

    public init(client: IPAddress, server: IPAddress? = nil, direction: Direction, service: Service) {
        self.client = client
        self.server = server
        self.direction = direction
        self.service = service
    }
}

/// Applies DESIGN.md's attribution rule to decoded IP packets.
///
/// The **server side** is decided by ports alone, whatever is local: the side with the
/// lower port (TCP, UDP, SCTP); equal ports: the destination; a `--service-port` makes its
/// port the server side whenever it appears. Without ports: the destination, except ICMP
/// and ICMPv6 replies and errors, whose source is the server. The **client** is the other
/// side, the **service** the server's port. The **direction** is relative to the local
/// networks: `in` when the packet goes to the local side, `out` when it leaves it; when
/// both or neither side is local, `in` means towards the server.
///
/// ```swift
/// let attributor = Attributor(localNetworks: LocalNetworks([try NetworkPrefix(parsing: "192.168.1.0/24")]))
/// let who = attributor.attribute(packet)   // client 192.168.1.10, server 142.250.1.1, out, TCP/443
/// ```
public struct Attributor: Sendable {
    public var localNetworks: LocalNetworks
    public var servicePorts: ServicePorts

    public init(localNetworks: LocalNetworks, servicePorts: ServicePorts = ServicePorts()) {
        self.localNetworks = localNetworks
        self.servicePorts = servicePorts
    }

    /// Attributes an IP packet (`packet.kind == .ip`).
    public func attribute(_ packet: DecodedPacket) -> Attribution {
        let key = flowKey(packet)
        return Attribution(
            client: key.clientSide.address, server: key.serverSide.address, direction: key.tag.direction, service: key.tag.service)
    }

    /// The packed key of an IP packet's attribution (the packet path's form of `attribute`).
    /// Always inlined: as a call it would take the decoded packet through memory (a tenth
    /// more instructions on the packet path, measured).
    @inline(always)
    func flowKey(_ packet: DecodedPacket) -> FlowKey {
        let serverIsDestination = serverIsDestination(packet)
        let sourceLocal = localNetworks.contains(packet.source)
        let destinationLocal = localNetworks.contains(packet.destination)
        let inbound = sourceLocal != destinationLocal ? destinationLocal : serverIsDestination
        let service = packet.hasPorts
            ? Service(ipProtocol: packet.ipProtocol, port: serverIsDestination ? packet.destinationPort : packet.sourcePort)
            : Service(ipProtocol: packet.ipProtocol)
        return serverIsDestination
            ? FlowKey(client: packet.source, server: packet.destination, direction: inbound ? .inbound : .outbound, service: service)
            : FlowKey(client: packet.destination, server: packet.source, direction: inbound ? .inbound : .outbound, service: service)
    }

    /// Whether the destination is the server side (else the source is).
    @inline(__always)
    func serverIsDestination(_ packet: DecodedPacket) -> Bool {
        guard packet.hasPorts else { return !packet.isReply }
        if !servicePorts.isEmpty {
            if servicePorts.contains(ipProtocol: packet.ipProtocol, port: packet.destinationPort) { return true }
            if servicePorts.contains(ipProtocol: packet.ipProtocol, port: packet.sourcePort) { return false }
        }
        return packet.destinationPort <= packet.sourcePort
    }
}

/// The `--service-port PROTO/PORT` values: ports that are the server side whenever they
/// appear (a service on a high port, such as `UDP/50000`, whose clients use lower ones).
///
/// ```swift
/// let ports = try ServicePorts(labels: ["UDP/50000"])
/// ports.contains(ipProtocol: 17, port: 50000)   // true
/// ```
public struct ServicePorts: Sendable, Equatable {
    /// `ipProtocol << 16 | port`, sorted; a handful at most, so a scan is fastest.
    private var entries: [UInt32] = []

    public init() {}

    /// Parses `TCP/443`-style labels (TCP, UDP or SCTP with a port from 1 to 65535).
    public init(labels: [String]) throws(ServicePortError) {
        for label in labels {
            guard let service = Service(label: label), let port = service.port, service != .other else {
                throw ServicePortError(text: label)
            }
            let entry = UInt32(service.ipProtocol) << 16 | UInt32(port)
            if !entries.contains(entry) { entries.append(entry) }
        }
        entries.sort()
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// The services, as labels.
    public var labels: [String] {
        entries.map { Service(ipProtocol: UInt8(truncatingIfNeeded: $0 >> 16), port: UInt16(truncatingIfNeeded: $0)).label }
    }

    @inline(__always)
    public func contains(ipProtocol: UInt8, port: UInt16) -> Bool {
        let wanted = UInt32(ipProtocol) << 16 | UInt32(port)
        for entry in entries where entry == wanted { return true }
        return false
    }
}

/// A `--service-port` value that is not `TCP/PORT`, `UDP/PORT` or `SCTP/PORT`.
public struct ServicePortError: Error, CustomStringConvertible, Sendable {
    public let text: String
    public var description: String {
        "'\(text)' is not a service port such as TCP/8443, UDP/50000 or SCTP/2905 (port 1-65535)"
    }
}
