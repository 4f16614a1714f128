import ArgumentParser
import Foundation
import Hummingbird
import Logging
import NIOCore
import TrafficCapture
import TrafficCore
import TrafficServer

/// `trafficmon serve`: capture (or replay) and serve metrics, JSON and the page.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Capture from an interface (or replay a file) and serve Prometheus metrics and JSON.",
        discussion: """
            Live capture needs root, or the capabilities cap_net_raw,cap_net_admin on the binary. \
            --read FILE replays a capture file as fast as it can and then keeps serving what it \
            computed (no privileges needed). SIGINT/SIGTERM close the open window and exit 0.
            """)

    @Option(help: ArgumentHelp("Capture live on this interface (see: trafficmon interfaces).", valueName: "name"))
    var interface: String?

    @Option(help: ArgumentHelp("Replay this capture file (pcap or pcapng) instead of capturing live.", valueName: "file"))
    var read: String?

    @OptionGroup var aggregation: AggregationOptions

    @Option(help: ArgumentHelp("Address to serve HTTP on: HOST:PORT, [IPv6]:PORT or :PORT.", valueName: "address"))
    var listen: String = "127.0.0.1:9000"

    @Option(help: ArgumentHelp("Closed windows kept in memory for /stats/history.", valueName: "windows"))
    var history: Int = 720

    @Option(help: ArgumentHelp("Clients and services listed one by one in records and per-window metrics; the rest is folded into 'other'.", valueName: "n"))
    var top: Int = 50

    @Flag(name: .customLong("enable-debug-inject"), help: "Serve POST /debug/inject (off by default).")
    var enableDebugInject = false

    @Option(help: ArgumentHelp("Bytes kept of each captured frame (live); byte counts always use the wire length.", valueName: "bytes"))
    var snaplen: Int32 = 256

    @Option(name: .customLong("buffer-size"), help: ArgumentHelp("Kernel capture buffer in MiB (live).", valueName: "mib"))
    var bufferSize: Int32 = 32

    @Flag(name: .customLong("immediate-mode"), help: "Deliver every packet at once instead of in 100 ms batches (live; more wake-ups).")
    var immediateMode = false

    @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel: String = "info"

    func validate() throws {
        switch (interface, read) {
        case (nil, nil): throw ValidationError("give --interface NAME to capture live or --read FILE to replay a file")
        case (.some, .some): throw ValidationError("--interface and --read exclude each other; give one")
        default: break
        }
        guard (1...10_000).contains(top) else { throw ValidationError("--top must be from 1 to 10000, not \(top)") }
        guard (1...1_000_000).contains(history) else { throw ValidationError("--history must be from 1 to 1000000, not \(history)") }
        guard (64...262_144).contains(snaplen) else { throw ValidationError("--snaplen must be from 64 to 262144, not \(snaplen)") }
        guard (1...4096).contains(bufferSize) else { throw ValidationError("--buffer-size must be from 1 to 4096 MiB, not \(bufferSize)") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
        do { _ = try ListenAddress(parsing: listen) } catch { throw ValidationError(error.description) }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "trafficmon")

        var server = ServerConfiguration()
        server.listen = try ListenAddress(parsing: listen)
        server.top = top
        server.historySize = history
        server.enableDebugInject = enableDebugInject
        server.version = Trafficmon.version

        var local = try aggregation.localNetworks()
        let source: PacketSource
        do {
            if let interface {
                var options = PacketSource.LiveOptions(interface: interface)
                options.filter = aggregation.filter
                options.snapshotLength = snaplen
                options.bufferSize = bufferSize << 20
                options.immediateMode = immediateMode
                source = try PacketSource.openLive(options)
                for address in source.interfaceAddresses {
                    local.add(NetworkPrefix(address: address, length: address.isIPv6 ? 128 : 32))
                }
            } else {
                source = try PacketSource.openFile(read ?? "", filter: aggregation.filter)
            }
        } catch {
            throw UserFacingError(error)
        }
        let windowConfiguration = WindowAggregator.Configuration(
            windowLength: try aggregation.windowLength(), localNetworks: local,
            maxClients: aggregation.maxClients, top: top)

        let trafficServer = TrafficServer(
            configuration: server, source: source, aggregation: windowConfiguration, logger: logger)
        logger.info("serving http://\(server.listen) (\(interface.map { "capturing on \($0)" } ?? "replaying \(read ?? "")"), local networks: \(local.prefixes.map(\.description).joined(separator: ", ")))")
        do {
            try await trafficServer.application.runService()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw UserFacingError("cannot listen on \(server.listen): the address is already in use (another trafficmon? pick one with --listen)")
        } catch let error as IOError where error.errnoCode == EACCES {
            throw UserFacingError("cannot listen on \(server.listen): permission denied (ports below 1024 need root or cap_net_bind_service)")
        } catch let error as IOError where error.errnoCode == EADDRNOTAVAIL {
            throw UserFacingError("cannot listen on \(server.listen): no such local address")
        }
    }
}
