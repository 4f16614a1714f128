import Foundation
import Hummingbird
import TrafficCore

/// `GET /stats/current` and `GET /stats/history` (the MVP's JSON routes), and
/// `GET /stats/capture` (capture health, for the live page).
struct StatsRoutes<Context: RequestContext> {
    let state: TrafficState

    func add(to router: Router<Context>) {
        router.get("/stats/current") { _, _ -> Response in
            .json(await state.currentRendered().json)
        }
        router.get("/stats/capture") { _, _ -> Response in
            .json(CaptureSummary(state: state, now: Int64(Date().timeIntervalSince1970 * 1e9)).jsonBytes())
        }
        router.get("/stats/history") { request, _ -> Response in
            let query = request.uri.queryParameters
            let limit = try Self.limit(query["limit"].map(String.init))
            let since = try Self.time(query["since"].map(String.init), name: "since")
            let until = try Self.time(query["until"].map(String.init), name: "until")
            let top = try Self.top(query["top"].map(String.init))
            let who = try Self.whoFilter(
                network: query["network"].map(String.init), asn: query["asn"].map(String.init),
                country: query["country"].map(String.init), state: state)
            if let since, let until, since >= until {
                throw badRequest("since must be earlier than until")
            }
            if since == nil && until == nil {
                return .json(Self.historyBody(state.rendered(limit: limit), top: top, who: who))
            }
            do {
                return .json(Self.historyBody(try await state.rendered(since: since, until: until, limit: limit), top: top, who: who))
            } catch {
                throw HTTPError(.serviceUnavailable, message: "the history database cannot be read: \(error)")
            }
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

    /// `top`: absent means the records as kept (`--top`); otherwise an integer in 0...10000,
    /// the most clients (and services) listed per window, the rest folded into `other`.
    static func top(_ text: String?) throws -> Int? {
        guard let text else { return nil }
        guard let value = Int(text), (0...10_000).contains(value) else {
            throw badRequest("top must be an integer from 0 to 10000, not '\(text.prefix(40))'")
        }
        return value
    }

    /// `since`/`until`: RFC 3339 (`2026-11-25T10:00:00Z`) or Unix seconds (`1764064800`, `1764064800.5`).
    static func time(_ text: String?, name: String) throws -> Int64? {
        guard let text else { return nil }
        if let nanos = Timestamp.parse(text) { return nanos }
        if !text.isEmpty, text.count <= 24, text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
           let seconds = Double(text), seconds.isFinite, seconds < 9e9 {
            return Int64((seconds * 1e9).rounded())
        }
        throw badRequest("\(name) must be an RFC 3339 time (2026-11-25T10:00:00Z) or Unix seconds, not '\(text.prefix(40))'")
    }

    /// `{"windows":[...]}`, each window seen through `who` (`WindowRecord.filtered`), then
    /// folded to `top` (the networks, countries and ASes a filter selected stay listed).
    static func historyBody(_ windows: [RenderedRecord], top: Int? = nil, who: WhoFilter = WhoFilter()) -> [UInt8] {
        var out = [UInt8]("{\"windows\":[".utf8)
        out.reserveCapacity(top == nil && who.isEmpty ? windows.reduce(16) { $0 + $1.json.count + 1 } : windows.count * 2048)
        for (i, rendered) in windows.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            // As kept: the bytes rendered when the window closed.
            if top == nil && who.isEmpty {
                out += rendered.json
                continue
            }
            var w = who.isEmpty ? rendered.record : rendered.record.filtered(who)
            if let top {
                let selected = (w.networks, w.countries, w.asns)
                w = w.folded(top: top)
                // `top` folds the parties; the entries a filter selected stay listed.
                if !who.isEmpty { (w.networks, w.countries, w.asns) = selected }
            }
            w.appendJSON(to: &out)
        }
        out += Array("]}".utf8)
        return out
    }
}
