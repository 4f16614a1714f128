import Logging
import ServiceLifecycle
import TrafficCapture

/// Runs the capture engine for the lifetime of the service group: starts it, reports
/// a capture failure once, and on graceful shutdown stops it (closing the open window)
/// before the publisher finishes.
public struct CaptureService: ServiceLifecycle.Service {
    let engine: CaptureEngine
    let channel: WindowChannel
    let state: TrafficState
    let logger: Logger

    init(engine: CaptureEngine, channel: WindowChannel, state: TrafficState, logger: Logger) {
        self.engine = engine
        self.channel = channel
        self.state = state
        self.logger = logger
    }

    public func run() async throws {
        engine.start()
        try? await cancelWhenGracefulShutdown {
            var reported = false
            var replayReported = false
            while true {
                try await Task.sleep(for: .milliseconds(200))
                switch engine.status {
                case .failed(let message) where !reported:
                    logger.error("capture stopped: \(message)")
                    reported = true
                case .replayed where !replayReported:
                    logger.info("capture file read to its end; serving what it holds")
                    replayReported = true
                default:
                    break
                }
            }
        }
        if Task.isShuttingDownGracefully { state.noteShutdown() }
        if await !engine.stop() {
            logger.warning("the capture did not stop within 1 s (a read that cannot be interrupted); its open window is not kept")
        }
        channel.finish()
    }
}
