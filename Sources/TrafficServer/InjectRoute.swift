import Foundation
import Hummingbird
import NIOCore
import TrafficCore

/// `POST /debug/inject`: the MVP's body, `{"client_ip":"10.10.10.10","direction":"in",
/// "proto":"TCP/8000","size":1200}`, counted through the same windows as captured packets,
/// with an optional `"server_ip"` (without one, the packet counts among the servers not
/// listed one by one, `other_servers`). Registered only with `--enable-debug-inject`.
struct InjectRoute<Context: RequestContext> {
    let state: TrafficState

    static var maxBodySize: Int { 64 * 1024 }
    static var maxSize: Int { 262_144 }

    func add(to router: Router<Context>) {
        router.post("/debug/inject") { request, _ -> Response in
            let buffer = try await request.body.collect(upTo: Self.maxBodySize)
            let attribution = try Self.parse(Data(buffer.readableBytesView))
            state.engine.inject(attribution.0, wireLength: attribution.1)
            state.metrics.countInject()
            return .json(Array("{\"status\":\"accepted\"}".utf8), status: .accepted)
        }
    }

    /// Validates the body; every problem is a 400 with a sentence naming the field.
    static func parse(_ data: Data) throws -> (Attribution, Int) {
        guard let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
            throw badRequest("body is not valid JSON")
        }
        guard let fields = object as? [String: Any] else {
            throw badRequest("body must be a JSON object like {\"client_ip\":\"10.10.10.10\",\"direction\":\"in\",\"proto\":\"TCP/8000\",\"size\":1200}")
        }
        func text(_ name: String) throws -> String {
            guard let value = fields[name], !(value is NSNull) else { throw badRequest("field '\(name)' is missing") }
            guard let string = value as? String else { throw badRequest("field '\(name)' must be a string") }
            return string
        }
        let clientText = try text("client_ip")
        let directionText = try text("direction")
        let protoText = try text("proto")
        guard let sizeValue = fields["size"], !(sizeValue is NSNull) else { throw badRequest("field 'size' is missing") }
        // JSON true/false arrive as NSNumber too ("c" type): only real numbers count.
        guard let number = sizeValue as? NSNumber, String(cString: number.objCType) != "c",
              let size = sizeValue as? Int, number.doubleValue == Double(size) else {
            throw badRequest("field 'size' must be an integer from 1 to \(maxSize)")
        }
        guard let client = IPAddress(clientText) else {
            throw badRequest("client_ip must be an IPv4 or IPv6 address, not '\(clientText.prefix(64))'")
        }
        var server: IPAddress?
        if let value = fields["server_ip"], !(value is NSNull) {
            guard let text = value as? String else { throw badRequest("field 'server_ip' must be a string") }
            guard let address = IPAddress(text) else {
                throw badRequest("server_ip must be an IPv4 or IPv6 address, not '\(text.prefix(64))'")
            }
            server = address
        }
        guard let direction = Direction(label: directionText) else {
            throw badRequest("direction must be \"in\" or \"out\", not '\(directionText.prefix(32))'")
        }
        // A packet of a protocol with ports must name its port: TCP/443, not TCP.
        guard let service = Service(label: protoText), service != .other,
              service.port != nil || !Service.hasPorts(service.ipProtocol) else {
            throw badRequest("proto must be a service such as TCP/443, UDP/53 or ICMP (ports 1-65535), not '\(protoText.prefix(32))'")
        }
        guard (1...maxSize).contains(size) else {
            throw badRequest("size must be an integer from 1 to \(maxSize), not \(size)")
        }
        return (Attribution(client: client, server: server, direction: direction, service: service), size)
    }
}
