import Hummingbird
import TrafficCore

/// `GET /stats/current` and `GET /stats/history`: the MVP's JSON routes.
struct StatsRoutes<Context: RequestContext> {
    let state: TrafficState

    func add(to router: Router<Context>) {
        router.get("/stats/current") { _, _ -> Response in
            let record = await state.currentWindow()
            return .json(record.jsonBytes())
        }
        router.get("/stats/history") { request, _ -> Response in
            let query = request.uri.queryParameters
            let limit = try Self.limit(query["limit"].map(String.init))
            return .json(Self.historyBody(state.history(limit: limit)))
        }
    }

    /// `limit`: absent means 10; otherwise an integer in 1...10000.
    static func limit(_ text: String?) throws -> Int {
        guard let text else { return 10 }
        guard let value = Int(text), (1...10_000).contains(value) else {
            throw badRequest("limit must be an integer from 1 to 10000, not '\(text.prefix(40))'")
        }
        return value
    }

    /// `{"windows":[...]}`.
    static func historyBody(_ windows: [WindowRecord]) -> [UInt8] {
        var out = [UInt8]("{\"windows\":[".utf8)
        out.reserveCapacity(windows.count * 2048)
        for (i, w) in windows.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            w.appendJSON(to: &out)
        }
        out += Array("]}".utf8)
        return out
    }
}
