import Hummingbird
import TrafficCapture

/// `GET /healthz` (the process answers) and `GET /readyz` (the capture runs).
struct HealthRoutes<Context: RequestContext> {
    let state: TrafficState

    func add(to router: Router<Context>) {
        router.get("/healthz") { _, _ -> Response in
            .json(Array("{\"status\":\"ok\"}".utf8))
        }
        router.get("/readyz") { _, _ -> Response in
            let status = state.engine.status
            var body = Array("{\"status\":\"\(status.label)\"".utf8)
            if let message = status.failure {
                body += Array(",\"error\":".utf8) + Response.jsonString(message)
            }
            body += Array("}".utf8)
            return .json(body, status: state.isReady ? .ok : .serviceUnavailable)
        }
    }
}

extension CaptureEngine.Status {
    /// One word for JSON (`capturing`, `replayed`, `failed`...).
    var label: String {
        switch self {
        case .starting: "starting"
        case .capturing: "capturing"
        case .replaying: "replaying"
        case .replayed: "replayed"
        case .failed: "failed"
        case .stopped: "stopped"
        }
    }

    /// Why reading failed, when it did.
    var failure: String? {
        if case .failed(let message) = self { return message }
        return nil
    }
}
