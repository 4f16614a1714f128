import CPcap
import Foundation
import Synchronization
import TrafficCore

/// Runs the inputs on threads of their own and coordinates their windows: a file replays
/// on one thread (one clock and one shard: a `WindowAggregator`) as fast as it can and then
/// keeps serving injects on the wall clock; a live capture (`LiveCapture`: one or more
/// interfaces, one or more handles each, and any flow inputs) reads, decodes and counts on
/// a thread per handle and per flow input while the engine's thread, the window
/// coordinator, closes windows on the wall clock (empty ones too), counts injects and
/// answers looks at the open window.
///
/// Other tasks talk to the engine's thread through a small control queue that it drains
/// between batches (a replay) or every ~100 ms and at once when woken (live), so the packet
/// path takes no lock.
///
/// ```swift
/// let engine = CaptureEngine(sources: [try PacketSource.openFile("x.pcap")], configuration: config) { closed in
///     publish(closed.record())
/// }
/// engine.start()
/// engine.inject(Attribution(...), wireLength: 1200)
/// let open = await engine.currentWindow()
/// await engine.stop()
/// ```
public final class CaptureEngine: Sendable {
    /// What the engine is doing.
    public enum Status: Sendable, Equatable {
        case starting
        /// Reading a live interface.
        case capturing
        /// Replaying a file.
        case replaying
        /// The file has been read to its end; windows now come from injects only.
        case replayed
        /// Reading failed; the message says why.
        case failed(String)
        case stopped
    }

    enum Control {
        case inject(Attribution, Int)
        case snapshot(ResumeOnce<WindowRecord?>)
    }

    /// The packet inputs: one capture file, or the live handles (several per interface when
    /// `PACKET_FANOUT` spreads it over threads); none when only flow inputs run.
    let sources: [PacketSource]
    /// The flow inputs (collectors), live beside the interfaces.
    public let counting: [any CountingInput]
    /// How packets are attributed and windows cut (local networks, service ports, ...).
    public let configuration: WindowAggregator.Configuration
    let onWindow: @Sendable (ClosedWindow) -> Void
    /// How long after a window's end a live capture waits for late packets before closing it.
    public let closeGrace: Int64

    private let state = LockedValue<Status>(.starting)
    private let controls = LockedValue<[Control]>([])
    private let hasControls = Atomic<Bool>(false)
    private let stopRequested = Atomic<Bool>(false)
    /// A pipe whose read end the capture thread polls (beside the capture descriptor while
    /// live), so a request (a snapshot, an inject, stop) is served at once rather than at
    /// the next packet or poll timeout (without a pipe, the timeout serves).
    private let wake = WakePipe()
    /// Whether the capture thread has ended, and who waits for it (`stop`).
    private let finished = LockedValue<(done: Bool, waiters: [ResumeOnce<Bool>])>((false, []))
    /// The capture thread, so that `stop` can interrupt a read from a stalled pipe.
    private let captureThread = LockedValue<pthread_t?>(nil)

    public convenience init(
        source: PacketSource, configuration: WindowAggregator.Configuration, closeGrace: Int64 = 400_000_000,
        onWindow: @escaping @Sendable (ClosedWindow) -> Void
    ) {
        self.init(sources: [source], configuration: configuration, closeGrace: closeGrace, onWindow: onWindow)
    }

    /// - Parameters:
    ///   - sources: one capture file, or live handles (all of the same kind).
    ///   - counting: flow inputs, live (not with a capture file).
    public init(
        sources: [PacketSource], counting: [any CountingInput] = [], configuration: WindowAggregator.Configuration,
        closeGrace: Int64 = 400_000_000,
        onWindow: @escaping @Sendable (ClosedWindow) -> Void
    ) {
        precondition(!sources.isEmpty || !counting.isEmpty, "an engine needs an input")
        self.sources = sources
        self.counting = counting
        self.configuration = configuration
        self.closeGrace = closeGrace
        self.onWindow = onWindow
    }

    /// Wakes the capture thread wherever it waits.
    private func wakeUp() {
        wake.signal()
    }

    public var status: Status { state.withLock { $0 } }

    /// What is being read: an interface or a file (`nil` when only flow inputs run).
    public var origin: PacketSource.Origin? { sources.first?.origin }

    /// The name of every source, as records and metrics give them: the interfaces, then the
    /// flow inputs, then `inject`; `file` for a capture file.
    public var sourceNames: [String] {
        isLive ? interfaces + counting.map(\.sourceName) + ["inject"] : ["file"]
    }

    /// Whether reads from the packet source can stall (a pipe).
    private var readsCanStall: Bool { sources.first?.readsCanStall ?? false }

    /// The interfaces read, in order, each once (empty for a file).
    public var interfaces: [String] {
        var names: [String] = []
        for source in sources {
            if case .interface(let name) = source.origin, !names.contains(name) { names.append(name) }
        }
        return names
    }

    /// Whether the inputs are live: interfaces, flow inputs or both.
    var isLive: Bool { !interfaces.isEmpty || !counting.isEmpty }

    /// Starts the capture thread.
    public func start() {
        let thread = Thread { [self] in
            // The thread may start with signals blocked: let the interrupt in.
            var interrupt = sigset_t()
            sigemptyset(&interrupt)
            sigaddset(&interrupt, Self.interruptSignal)
            pthread_sigmask(SIG_UNBLOCK, &interrupt, nil)
            self.captureThread.withLock { $0 = pthread_self() }
            self.run()
            let waiters = self.finished.withLock { f -> [ResumeOnce<Bool>] in
                f.done = true
                defer { f.waiters = [] }
                return f.waiters
            }
            for w in waiters { w.resume(true) }
        }
        thread.name = "trafficmon-capture"
        thread.start()
    }

    /// Stops capturing, closes the open window (marked partial) and waits for the thread to
    /// end. A replay blocked in a read from a pipe that delivers nothing (a stalled FIFO or
    /// stdin) is interrupted: the read fails with EINTR, the open window closes as usual.
    /// Returns false when the thread has not ended within `timeout` (it is then left
    /// behind, its open window with it) or the wait was cancelled.
    @discardableResult
    public func stop(timeout: Duration = .seconds(1)) async -> Bool {
        stopRequested.store(true, ordering: .releasing)
        wakeUp()
        let interrupter = readsCanStall ? Task.detached { [self] in await interruptReads() } : nil
        defer { interrupter?.cancel() }
        let waiter = ResumeOnce<Bool>()
        let done = finished.withLock { f -> Bool in
            if !f.done { f.waiters.append(waiter) }
            return f.done
        }
        if done { return true }
        // Whichever comes first: the thread's end (true), the timeout or a cancellation
        // (false; the waiter then stays listed until the thread ends, resumed already).
        let timer = Task {
            try? await Task.sleep(for: timeout)
            waiter.resume(false)
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler { await waiter.value() } onCancel: { waiter.resume(false) }
    }

    /// Signals the capture thread (a no-op handler installed without SA_RESTART) every
    /// 50 ms until it ends or `stop` stops waiting, so that a blocking read returns EINTR.
    private func interruptReads() async {
        Self.installInterruptHandler
        while !finished.withLock({ $0.done }), !Task.isCancelled {
            if let thread = captureThread.withLock({ $0 }) { pthread_kill(thread, Self.interruptSignal) }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// SIGURG: ignored by default, so a stray one (out-of-band socket data) changes nothing.
    static let interruptSignal = SIGURG

    private static let installInterruptHandler: Void = {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART: a blocked read() returns EINTR
        sigaction(interruptSignal, &action, nil)
    }()

    /// Counts one already-attributed packet at the engine's current time (the packet
    /// time of a replay in progress, the wall clock otherwise).
    public func inject(_ attribution: Attribution, wireLength: Int) {
        enqueue(.inject(attribution, wireLength))
    }

    /// The open window, folded to the configured top (`nil` when none is open).
    public func currentWindow() async -> WindowRecord? {
        if finished.withLock({ $0.done }) { return nil }
        let reply = ResumeOnce<WindowRecord?>()
        enqueue(.snapshot(reply))
        // A replay blocked in a read from a stalled pipe cannot answer: after 1 s the
        // caller gets nil (and shows the last closed window).
        let timer = readsCanStall && status == .replaying ? Task {
            try? await Task.sleep(for: .seconds(1))
            reply.resume(nil)
        } : nil
        defer { timer?.cancel() }
        // The thread may have ended between the check and the enqueue.
        if finished.withLock({ $0.done }) { drainAfterFinish() }
        return await reply.value()
    }

    private func enqueue(_ control: Control) {
        controls.withLock { $0.append(control) }
        hasControls.store(true, ordering: .releasing)
        wakeUp()
    }

    /// Answers whatever is queued once the thread is gone.
    private func drainAfterFinish() {
        let pending = controls.withLock { list -> [Control] in
            defer { list = [] }
            return list
        }
        for control in pending {
            if case .snapshot(let reply) = control { reply.resume(nil) }
        }
    }

    // MARK: The capture thread

    private func run() {
        if isLive {
            runLive()
        } else {
            runReplay()
        }
        state.withLock { if case .failed = $0 {} else { $0 = .stopped } }
        finished.withLock { $0.done = true }
        drainAfterFinish()
    }

    /// The window coordinator of a live capture, on this thread; the handles are read on
    /// threads of their own.
    private func runLive() {
        let names = interfaces
        var handles: [LiveCapture.Handle] = []
        for source in sources {
            let input = names.firstIndex(of: source.origin.name) ?? 0
            handles.append(LiveCapture.Handle(
                source: source, input: input, readsInterfaceDrops: !handles.contains { $0.input == input }))
        }
        let live = LiveCapture(
            handles: handles, counting: counting, inputNames: names, configuration: configuration, closeGrace: closeGrace
        ) { [onWindow] closed in onWindow(closed) }
        live.tick(now: Self.now())
        do {
            try live.startCapturing { [state] message in
                state.withLock { $0 = .failed(message) }
            }
        } catch {
            state.withLock { $0 = .failed(error.description) }
            return
        }
        state.withLock { if case .failed = $0 {} else { $0 = .capturing } }
        while !stopRequested.load(ordering: .acquiring) {
            waitForWork(captureDescriptor: -1, milliseconds: 100)
            let now = Self.now()
            handleControls(live, clock: now)
            live.tick(now: now)
        }
        live.stop(now: Self.now())
    }

    /// A file, replayed on this thread (one clock, one shard), then injects on the wall clock.
    private func runReplay() {
        let aggregator = WindowAggregator(configuration: configuration) { [onWindow] closed in onWindow(closed) }
        defer { aggregator.finish() }
        let pump: PacketPump
        do {
            pump = try PacketPump(source: sources[0], aggregator: aggregator)
        } catch {
            state.withLock { $0 = .failed(error.description) }
            return
        }
        state.withLock { $0 = .replaying }
        while !stopRequested.load(ordering: .acquiring) {
            let n: Int
            do {
                n = try pump.dispatch(maxPackets: 10_000)
            } catch {
                // A read interrupted by `stop` (a stalled pipe) is the end asked for, not a failure.
                if !stopRequested.load(ordering: .acquiring) { state.withLock { $0 = .failed(error.description) } }
                aggregator.finish()
                break
            }
            let time = aggregator.eventTime
            handleControls(aggregator, clock: time == .min ? Self.now() : time)
            if n == 0 {
                aggregator.finish()
                state.withLock { $0 = .replayed }
                break
            }
        }
        // After the file: injects on the wall clock, windows closed as it passes them.
        while !stopRequested.load(ordering: .acquiring) {
            waitForWork(captureDescriptor: -1, milliseconds: 100)
            let now = Self.now()
            handleControls(aggregator, clock: now)
            aggregator.advance(to: now - closeGrace, emitEmpty: false)
        }
    }

    /// Sleeps until the capture descriptor has packets (when not -1), a request wakes the
    /// thread, or `milliseconds` pass.
    private func waitForWork(captureDescriptor: Int32, milliseconds: Int32) {
        wake.wait(alongside: captureDescriptor, milliseconds: milliseconds)
    }

    /// Injects and looks at the open window: a live capture's coordinator, or the file's
    /// aggregator once the file has ended. Requests that arrived together share one
    /// snapshot: under a burst of /stats/current requests the capture thread builds one
    /// record per drain (at most ten a second while capturing), not one per request.
    private func handleControls(_ target: some WindowControls, clock: Int64) {
        guard hasControls.load(ordering: .acquiring) else { return }
        let pending = controls.withLock { list -> [Control] in
            hasControls.store(false, ordering: .releasing)
            defer { list = [] }
            return list
        }
        var snapshot: WindowRecord??
        for control in pending {
            switch control {
            case .inject(let attribution, let size):
                target.inject(attribution, wireLength: size, now: clock)
                snapshot = nil
            case .snapshot(let reply):
                if snapshot == nil { snapshot = .some(target.snapshot()) }
                reply.resume(snapshot ?? nil)
            }
        }
    }

    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}

/// A reply that the first of several parties gives (the capture thread, a timeout, a
/// cancellation) and later ones cannot change; `value()` waits for it, whether it came
/// before or after the wait began.
///
/// ```swift
/// let reply = ResumeOnce<Bool>()
/// Task { reply.resume(true) }
/// let answer = await reply.value()
/// ```
final class ResumeOnce<Value: Sendable>: Sendable {
    /// The answer once given (`.some` even when `Value` is an optional holding nil), and
    /// the waiter if it came first.
    private let state = LockedValue<(answer: Value?, waiting: CheckedContinuation<Value, Never>?)>((nil, nil))

    func resume(_ value: Value) {
        let waiting = state.withLock { s -> CheckedContinuation<Value, Never>? in
            guard s.answer == nil else { return nil }
            s.answer = value
            defer { s.waiting = nil }
            return s.waiting
        }
        waiting?.resume(returning: value)
    }

    func value() async -> Value {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { s -> Value? in
                if s.answer == nil { s.waiting = continuation }
                return s.answer
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// What the capture thread's requests act on: an inject at the wall clock, a look at the
/// open window.
protocol WindowControls {
    func inject(_ attribution: Attribution, wireLength: Int, now: Int64)
    func snapshot() -> WindowRecord?
}

extension LiveCapture: WindowControls {}

extension WindowAggregator: WindowControls {
    func inject(_ attribution: Attribution, wireLength: Int, now: Int64) {
        add(attribution, timestamp: now, wireLength: wireLength)
    }
}
