import CPcap
import Foundation
import Synchronization
import TrafficCore

/// A live capture on one or more interfaces, each read through one or more libpcap
/// handles (a `PACKET_FANOUT` group spreads an interface's packets over them), and any flow
/// inputs (`CountingInput`: a collector's socket): one thread per handle and per flow input
/// reads, decodes and counts into a `WindowShard` of its own, with no lock per packet or
/// flow record, and one coordinator thread runs the window clock on the wall clock.
///
/// The coordinator publishes the open window's start; a capture thread counts each packet
/// into the window its time names, or, when that window has closed already, into the open
/// one as late. When the wall clock passes a window's end plus the grace, the coordinator
/// asks every capture thread (through its wake pipe) for its tables of the windows before
/// the open one and its capture statistics, merges nothing itself, and hands the window,
/// with every shard's tables and the drops (kernel drops summed over an interface's
/// handles, its interface drops read from one of them), to `onWindow`. Injects are counted
/// by the coordinator into a shard of its own; a look at the open window (`snapshot`)
/// takes a copy of every shard's tables for it.
final class LiveCapture: @unchecked Sendable {
    /// One handle: its source, the input (interface) it belongs to, and whether its
    /// interface drops are the interface's (the first handle of each).
    struct Handle {
        var source: PacketSource
        var input: Int
        var readsInterfaceDrops: Bool
    }

    /// A question to a capture thread, and its answer.
    enum Request {
        /// Hand over the tables of every window that starts before `end`.
        case close(before: Int64)
        /// A copy of the tables of the window that starts at `start`.
        case snapshot(start: Int64)
    }

    struct Answer {
        var tables: [(start: Int64, tables: WindowTables)] = []
        var statistics: (received: UInt64, kernelDropped: UInt64, interfaceDropped: UInt64)?
    }

    /// One capture thread's state that the coordinator reaches: a libpcap handle's, or a
    /// flow input's (`handle` nil).
    final class Worker: @unchecked Sendable {
        let handle: Handle?
        let counting: (any CountingInput)?
        let shard: WindowShard
        let wake: WakePipe
        /// The request being asked (coordinator sets it, then `asked`), its answer.
        var request: Request = .close(before: .min)
        var answer = Answer()
        let asked = Atomic<Int>(0)
        let answered = Atomic<Int>(0)
        /// The thread has ended (a read failed, or stop): its shard is the coordinator's now.
        let ended = Atomic<Bool>(false)
        var failure: String?

        init(handle: Handle?, counting: (any CountingInput)?, shard: WindowShard) {
            self.handle = handle
            self.counting = counting
            self.shard = shard
            self.wake = WakePipe()
        }

        var name: String { handle?.source.origin.name ?? counting?.sourceName ?? "input" }
    }

    let configuration: WindowAggregator.Configuration
    /// The interfaces, by input index.
    let inputNames: [String]
    /// Every source by input index: the interfaces, the flow inputs, then `inject`.
    let sourceNames: [String]
    let workers: [Worker]
    let closeGrace: Int64
    let onWindow: (ClosedWindow) -> Void
    /// The open window's start (`.min` before the first opens): capture threads read it on
    /// their slow path.
    let openStart = Atomic<Int64>(.min)
    let stopping = Atomic<Bool>(false)
    /// Signalled when a capture thread answers or ends.
    let answers = NSCondition()

    // Coordinator thread only.
    var clock: WindowClock
    let injectShard: WindowShard
    /// Cumulative statistics per handle at the last close.
    var lastStatistics: [(kernel: UInt64, interface: UInt64)]

    init(handles: [Handle], counting: [any CountingInput] = [], inputNames: [String], configuration: WindowAggregator.Configuration,
         closeGrace: Int64, onWindow: @escaping (ClosedWindow) -> Void) {
        self.configuration = configuration
        self.inputNames = inputNames
        sourceNames = inputNames + counting.map(\.sourceName) + ["inject"]
        self.closeGrace = closeGrace
        self.onWindow = onWindow
        workers = handles.map {
            Worker(
                handle: $0, counting: nil,
                shard: WindowShard(configuration: configuration, input: $0.input, oversizedAbove: $0.source.oversizedAbove))
        } + counting.enumerated().map { k, input in
            Worker(handle: nil, counting: input, shard: WindowShard(configuration: configuration, input: inputNames.count + k))
        }
        clock = WindowClock(windowLength: configuration.windowLength)
        injectShard = WindowShard(configuration: configuration, input: sourceNames.count - 1)
        lastStatistics = Array(repeating: (0, 0), count: workers.count)
    }

    /// Starts the capture threads; the caller's thread then runs the coordinator (`tick`).
    func startCapturing(onFailure: @escaping @Sendable (String) -> Void) throws(CaptureError) {
        var pumps: [PacketPump?] = []
        for worker in workers {
            guard let handle = worker.handle else {
                pumps.append(nil)
                continue
            }
            let buffer = UnsafeMutablePointer<PreparedPacket>.allocate(capacity: PacketPump.batchSize)
            buffer.initialize(repeating: PreparedPacket(), count: PacketPump.batchSize)
            let shard = worker.shard
            pumps.append(try PacketPump(
                source: handle.source, shard: shard, buffer: buffer, capacity: PacketPump.batchSize, owned: true
            ) { [self] batch, _ in
                shard.countLive(batch) { self.openStart.load(ordering: .acquiring) }
                return buffer
            })
        }
        for (worker, pump) in zip(workers, pumps) {
            let thread = Thread { [self] in
                capture(worker, pump: pump, onFailure: onFailure)
            }
            thread.name = "trafficmon-\(worker.handle == nil ? "flows" : "capture")-\(worker.name)"
            thread.start()
        }
    }

    // MARK: Capture threads

    private func capture(_ worker: Worker, pump: PacketPump?, onFailure: @Sendable (String) -> Void) {
        let descriptor = worker.handle?.source.selectableDescriptor ?? worker.counting?.descriptor ?? -1
        let openWindow = { self.openStart.load(ordering: .acquiring) }
        while !stopping.load(ordering: .acquiring) {
            worker.wake.wait(alongside: descriptor, milliseconds: descriptor >= 0 ? 100 : 10)
            do {
                if let pump {
                    try pump.dispatch(maxPackets: -1)
                } else if let counting = worker.counting {
                    try counting.receive(into: worker.shard, openWindow: openWindow)
                }
            } catch {
                let message = "\(error)"
                worker.failure = message
                onFailure(message)
                break
            }
            answerIfAsked(worker)
        }
        // Whatever was asked last is answered by the coordinator from the shard itself now.
        answers.lock()
        worker.ended.store(true, ordering: .releasing)
        answers.broadcast()
        answers.unlock()
    }

    private func answerIfAsked(_ worker: Worker) {
        let asked = worker.asked.load(ordering: .acquiring)
        guard asked != worker.answered.load(ordering: .relaxed) else { return }
        let answer = Self.answer(worker.request, shard: worker.shard, source: worker.handle?.source)
        answers.lock()
        worker.answer = answer
        worker.answered.store(asked, ordering: .releasing)
        answers.broadcast()
        answers.unlock()
    }

    static func answer(_ request: Request, shard: WindowShard, source: PacketSource?) -> Answer {
        switch request {
        case .close(let end):
            return Answer(tables: shard.take(before: end), statistics: source?.statistics())
        case .snapshot(let start):
            return Answer(tables: shard.snapshot(start).map { [(start, $0)] } ?? [], statistics: source?.statistics())
        }
    }

    /// Asks every capture thread `request` and returns their answers, in `workers` order.
    /// A thread that has ended is answered from its shard here.
    private func ask(_ request: Request) -> [Answer] {
        var generations: [Int] = []
        for worker in workers {
            worker.request = request
            let next = worker.asked.load(ordering: .relaxed) + 1
            worker.asked.store(next, ordering: .releasing)
            generations.append(next)
            worker.wake.signal()
        }
        var answers: [Answer] = []
        for (worker, generation) in zip(workers, generations) {
            self.answers.lock()
            while worker.answered.load(ordering: .acquiring) != generation && !worker.ended.load(ordering: .acquiring) {
                self.answers.wait()
            }
            self.answers.unlock()
            if worker.answered.load(ordering: .acquiring) == generation {
                answers.append(worker.answer)
            } else {
                answers.append(Self.answer(request, shard: worker.shard, source: worker.handle?.source))
            }
        }
        return answers
    }

    // MARK: The coordinator

    /// Closes the windows the wall clock (less the grace) has passed, opening the next ones,
    /// and hands each on. Called by the coordinator thread every ~100 ms and when woken.
    func tick(now: Int64) {
        let closed = clock.advance(to: now - closeGrace, emitEmpty: true)
        openStart.store(clock.isOpen ? clock.start : .min, ordering: .releasing)
        guard let last = closed.last else { return }
        emit(closed, answers: ask(.close(before: last.end)))
    }

    /// Counts an inject at wall-clock time `now`.
    func inject(_ attribution: Attribution, wireLength: Int, now: Int64) {
        if !clock.isOpen { tick(now: now) }
        injectShard.countInject(attribution, timestamp: now, wireLength: wireLength) { [clock] in clock.isOpen ? clock.start : .min }
    }

    /// The open window as a record (marked partial), or `nil` when none is open.
    func snapshot() -> WindowRecord? {
        guard var facts = clock.openFacts else { return nil }
        facts.sources = sourceNames
        let answers = ask(.snapshot(start: facts.start))
        let (kernel, interface) = drops(answers, keep: false)
        setInputs(&facts, kernel: kernel, interface: interface)
        var tables: [(WindowTables, WindowShard?)] = answers.flatMap { answer in
            answer.tables.map { ($0.tables, WindowShard?.none) }
        }
        if let injected = injectShard.snapshot(facts.start) { tables.append((injected, nil)) }
        return ClosedWindow(facts: facts, tables: tables, configuration: configuration).record()
    }

    /// Stops: the capture threads end, the windows up to the one holding `now` close (the
    /// last marked partial) and are handed on with every table still in a shard: a packet
    /// a shard placed in a later window (a clock ahead of this one) counts in the last.
    func stop(now: Int64) {
        stopping.store(true, ordering: .releasing)
        for worker in workers { worker.wake.signal() }
        answers.lock()
        while !workers.allSatisfy({ $0.ended.load(ordering: .acquiring) }) { answers.wait() }
        answers.unlock()
        let closed = clock.advance(to: now, emitEmpty: true) + (clock.finish().map { [$0] } ?? [])
        emit(closed, answers: workers.map { Self.answer(.close(before: .max), shard: $0.shard, source: $0.handle?.source) }, final: true)
    }

    /// Each input's kernel and interface drops since the last close (kernel drops summed
    /// over an interface's handles, interface drops read from one); `keep`: they are now
    /// counted (a close), not looked at (a snapshot).
    private func drops(_ answers: [Answer], keep: Bool) -> (kernel: [UInt64], interface: [UInt64]) {
        var kernel = [UInt64](repeating: 0, count: inputNames.count)
        var interface = [UInt64](repeating: 0, count: inputNames.count)
        for (i, (worker, answer)) in zip(workers, answers).enumerated() {
            guard let statistics = answer.statistics, let handle = worker.handle else { continue }
            let input = handle.input
            kernel[input] &+= statistics.kernelDropped &- lastStatistics[i].kernel
            if handle.readsInterfaceDrops { interface[input] &+= statistics.interfaceDropped &- lastStatistics[i].interface }
            if keep { lastStatistics[i] = (statistics.kernelDropped, statistics.interfaceDropped) }
        }
        return (kernel, interface)
    }

    /// A window's per-input drops and their sums.
    private func setInputs(_ facts: inout WindowFacts, kernel: [UInt64], interface: [UInt64]) {
        facts.inputs = inputNames.enumerated().map { i, name in
            InputFacts(name: name, kernelDropped: kernel[i], interfaceDropped: interface[i])
        }
        facts.kernelDropped = facts.inputs.reduce(0) { $0 &+ $1.kernelDropped }
        facts.interfaceDropped = facts.inputs.reduce(0) { $0 &+ $1.interfaceDropped }
    }

    /// Hands each closed window on with every shard's tables for it; the drops since the
    /// last close go with the newest. `final`: the tables of windows after the last closed
    /// one count in it (nothing comes after).
    private func emit(_ closed: [WindowFacts], answers: [Answer], final: Bool = false) {
        let (kernel, interface) = drops(answers, keep: true)
        let none = [UInt64](repeating: 0, count: inputNames.count)
        for (k, window) in closed.enumerated() {
            var facts = window
            let newest = k == closed.count - 1
            setInputs(&facts, kernel: newest ? kernel : none, interface: newest ? interface : none)
            facts.sources = sourceNames
            var tables: [(WindowTables, WindowShard?)] = []
            for (worker, answer) in zip(workers, answers) {
                for part in answer.tables where part.start == facts.start || (final && newest && part.start > facts.start) {
                    tables.append((part.tables, worker.shard))
                }
            }
            if let injected = injectShard.take(facts.start) { tables.append((injected, injectShard)) }
            onWindow(ClosedWindow(facts: facts, tables: tables, configuration: configuration))
        }
        // Tables of windows no close covered (a packet far ahead of the clock) go back.
        for (worker, answer) in zip(workers, answers) {
            for part in answer.tables where !closed.contains(where: { $0.start == part.start }) {
                if final && part.start > (closed.last?.start ?? .max) { continue }
                worker.shard.recycle(part.tables)
            }
        }
    }
}

/// A non-blocking pipe that wakes a thread waiting in `poll`.
final class WakePipe: @unchecked Sendable {
    let reader: Int32
    let writer: Int32

    init() {
        var ends: [Int32] = [-1, -1]
        if pipe(&ends) == 0 {
            for fd in ends {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            }
        }
        reader = ends[0]
        writer = ends[1]
    }

    deinit {
        if reader >= 0 { close(reader) }
        if writer >= 0 { close(writer) }
    }

    /// Wakes the waiting thread (a full pipe already means "wake up").
    func signal() {
        guard writer >= 0 else { return }
        var byte: UInt8 = 1
        _ = write(writer, &byte, 1)
    }

    /// Sleeps until `descriptor` (when not -1) is readable, `signal` is called, or
    /// `milliseconds` pass.
    func wait(alongside descriptor: Int32, milliseconds: Int32) {
        var descriptors = (
            pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: reader, events: Int16(POLLIN), revents: 0))
        let ready = withUnsafeMutableBytes(of: &descriptors) { raw in
            poll(raw.baseAddress!.assumingMemoryBound(to: pollfd.self), 2, milliseconds)
        }
        guard ready > 0, descriptors.1.revents & Int16(POLLIN) != 0 else { return }
        var drained: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        while withUnsafeMutableBytes(of: &drained, { read(reader, $0.baseAddress, $0.count) }) > 0 {}
    }
}
