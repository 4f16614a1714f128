import CompressNIO
import Hummingbird
import NIOCore

/// `GET /metrics`: text format 0.0.4, OpenMetrics when the Accept header asks for it,
/// gzip when Accept-Encoding allows it.
struct MetricsRoute<Context: RequestContext> {
    let state: TrafficState

    func add(to router: Router<Context>) {
        router.get("/metrics") { request, _ -> Response in
            let accept = request.headers[.accept] ?? ""
            let format: TrafficMetrics.Format = accept.contains("application/openmetrics-text") ? .openMetrics : .prometheus
            let text = state.metrics.exposition(format: format)
            var headers: HTTPFields = [.contentType: format.contentType]
            var body = ByteBuffer(bytes: text)
            if Self.acceptsGzip(request.headers[.acceptEncoding]) {
                body = try body.compress(with: .gzip())
                headers[.contentEncoding] = "gzip"
                headers[.vary] = "Accept-Encoding"
            }
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
        }
    }

    /// `gzip` listed without `q=0`.
    static func acceptsGzip(_ header: String?) -> Bool {
        guard let header else { return false }
        for part in header.split(separator: ",") {
            let fields = part.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let coding = fields.first, coding == "gzip" || coding == "x-gzip" || coding == "*" else { continue }
            if fields.dropFirst().contains(where: { $0.replacingOccurrences(of: " ", with: "") == "q=0" || $0.hasPrefix("q=0.0") && Double($0.dropFirst(2)) == 0 }) {
                continue
            }
            return true
        }
        return false
    }
}
