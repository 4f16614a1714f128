import Hummingbird

/// `GET /healthz` (the process answers) and `GET /readyz` (the capture runs).
struct HealthRoutes<Context: RequestContext> {
    let state: TrafficState

    func add(to router: Router<Context>) {
        router.get("/healthz") { _, _ -> Response in
            .json(Array("{\"status\":\"ok\"}".utf8))
        }
        router.get("/readyz") { _, _ -> Response in
            let status = state.engine.status
            let text: String
            switch status {
            case .starting: text = "starting"
            case .capturing: text = "capturing"
            case .replaying: text = "replaying"
            case .replayed: text = "replayed"
            case .failed: text = "failed"
            case .stopped: text = "stopped"
            }
            var body = Array("{\"status\":\"\(text)\"".utf8)
            if case .failed(let message) = status {
                body += Array(",\"error\":".utf8) + Response.jsonString(message)
            }
            body += Array("}".utf8)
            return .json(body, status: state.isReady ? .ok : .serviceUnavailable)
        }
    }
}
