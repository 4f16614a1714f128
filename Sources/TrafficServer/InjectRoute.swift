import Foundation
import Hummingbird
import NIOCore
import TrafficCore

/// `POST /debug/inject`: the MVP's body, `{"client_ip":"10.10.10.10","direction":"in",
/// "proto":"TCP/8000","size":1200}`, counted through the same windows as captured packets.
/// Registered only with `--enable-debug-inject`.
struct InjectRoute<Context: RequestContext> {
    let state: TrafficState

    static var maxBodySize: Int { 64 * 1024 }
    static var maxSize: Int { 262_144 }

    struct Body: Decodable {
        var client_ip: String
        var direction: String
        var proto: String
        var size: Int
    }

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
        let body: Body
        do {
            body = try JSONDecoder().decode(Body.self, from: data)
        } catch let error as DecodingError {
            throw badRequest(describe(error))
        }
        guard let client = IPAddress(body.client_ip) else {
            throw badRequest("client_ip must be an IPv4 or IPv6 address, not '\(body.client_ip.prefix(64))'")
        }
        guard let direction = Direction(label: body.direction) else {
            throw badRequest("direction must be \"in\" or \"out\", not '\(body.direction.prefix(32))'")
        }
        guard let service = Service(label: body.proto), service != .other else {
            throw badRequest("proto must be a service such as TCP/443, UDP/53 or ICMP (ports 1-65535), not '\(body.proto.prefix(32))'")
        }
        guard (1...maxSize).contains(body.size) else {
            throw badRequest("size must be an integer from 1 to \(maxSize), not \(body.size)")
        }
        return (Attribution(client: client, direction: direction, service: service), body.size)
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, _):
            return "field '\(key.stringValue)' is missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            let field = context.codingPath.last?.stringValue ?? "body"
            let expected = field == "size" ? "an integer" : (field == "body" ? "a JSON object" : "a string")
            return "field '\(field)' must be \(expected)"
        case .dataCorrupted(let context):
            if let field = context.codingPath.last?.stringValue { return "field '\(field)' must be an integer" }
            return "body is not valid JSON"
        @unknown default:
            return "body is not valid JSON"
        }
    }
}
