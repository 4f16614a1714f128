import ArgumentParser
import Foundation
import TrafficCapture
import TrafficCore

/// `trafficmon report FILE...`: offline windows as NDJSON or a table.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Read capture files and print one window record per window.",
        discussion: """
            Reads pcap or pcapng files in order, through the same decoder, attribution and windows \
            as 'serve'. With --format json (the default) stdout holds one JSON window record per line \
            (NDJSON) and nothing else; --format table prints the same figures for people.
            Exit status: 0 on success, 2 when a file cannot be read, is truncated or corrupt, has a \
            link type trafficmon does not decode, or the filter does not compile (the windows read \
            before a read error are still printed).
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case json, table
    }

    @Argument(help: ArgumentHelp("Capture files (pcap or pcapng).", valueName: "file"))
    var files: [String]

    @OptionGroup var aggregation: AggregationOptions

    @Option(help: "Output format: json (NDJSON, one window record per line) or table.")
    var format: Format = .json

    @Option(help: ArgumentHelp("List only the top N clients, servers (and services) of each window; the rest is folded into 'other'.", valueName: "n"))
    var top: Int?

    @Option(help: ArgumentHelp("Threads that decode and count (one more reads the files); the default is one less than the number of cores, at least 1.", valueName: "n"))
    var threads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount - 1)

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one capture file") }
        if let top, top < 1 { throw ValidationError("--top must be at least 1, not \(top)") }
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be from 1 to 256, not \(threads)") }
    }

    func run() throws {
        var configuration = WindowAggregator.Configuration(
            windowLength: try aggregation.windowLength(),
            localNetworks: try aggregation.localNetworks(),
            servicePorts: try aggregation.servicePortSet(),
            maxClients: aggregation.maxClients,
            top: top)
        try aggregation.addOrigins(to: &configuration)
        // A `--networks` file is read on a thread of its own while the capture is read
        // (10,000 entries take about 16 ms of CPU): the first record waits for it.
        let networks = aggregation.networks == nil ? nil : InBackground { [aggregation] in try aggregation.readNetworks() }
        // Open every file first, so a bad one is refused before anything is printed.
        var sources: [PacketSource] = []
        for path in files {
            do {
                sources.append(try PacketSource.openFile(path, filter: aggregation.filter))
            } catch {
                throw UserFacingError(error)
            }
        }
        // Records are built and printed on a second thread while the next window fills;
        // at most two closed windows wait, so memory stays bounded.
        let output = ReportWriter(format: format)
        let writerQueue = DispatchQueue(label: "trafficmon.report.writer")
        let slots = DispatchSemaphore(value: 2)
        // One thread walks the files, `--threads` decode and count.
        let stopping = LockedValue<ParallelPump?>(nil)
        let pump: ParallelPump
        do {
            pump = try ParallelPump(configuration: configuration, threads: threads) { closed in
                slots.wait()
                writerQueue.async {
                    var closed = closed
                    // A networks file that could not be read prints nothing: the run ends
                    // with its error.
                    let record: WindowRecord?
                    switch networks?.value() {
                    case .failure?:
                        record = nil
                    case .success(let named)?:
                        closed.networks = named
                        record = closed.record()
                    case nil:
                        record = closed.record()
                    }
                    // The tables go back to the counting thread's pool as soon as the record
                    // is built (before it is rendered), so its next window finds a spare set
                    // rather than allocating and faulting in a new one.
                    closed.recycle()
                    if let record { output.write(record) } else { stopping.withLock { $0?.stop() } }
                    slots.signal()
                }
            }
        } catch {
            throw UserFacingError(error)
        }
        stopping.withLock { $0 = pump }
        var failure: CaptureError?
        for source in sources {
            do {
                try pump.read(source)
            } catch {
                failure = error
                break
            }
        }
        pump.finish()
        writerQueue.sync {}
        if case .failure(let error)? = networks?.value() { throw error }
        output.flush()
        if let failure { throw UserFacingError(failure) }
    }
}
