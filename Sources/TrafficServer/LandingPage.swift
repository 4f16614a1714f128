import Hummingbird
import NIOCore

/// `GET /`: a plain page that links to what the server offers.
struct LandingPage<Context: RequestContext> {
    let state: TrafficState

    func add(to router: Router<Context>) {
        router.get("/") { _, _ -> Response in
            let inject = state.configuration.enableDebugInject
                ? "<li><code>POST <a href=\"/debug/inject\">/debug/inject</a></code> (enabled)</li>" : ""
            let html = """
                <!doctype html>
                <html lang="en"><head><meta charset="utf-8"><title>trafficmon</title></head>
                <body>
                <h1>trafficmon \(state.configuration.version)</h1>
                <ul>
                <li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
                <li><a href="/stats/current">/stats/current</a>: the open window (JSON)</li>
                <li><a href="/stats/history?limit=10">/stats/history?limit=10</a>: the last closed windows (JSON)</li>
                <li><a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a></li>
                \(inject)
                </ul>
                </body></html>
                """
            return Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: html)))
        }
    }
}
