import ArgumentParser
import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import TrafficCapture
import TrafficCore
import TrafficFlows
import TrafficServer
import TrafficStore

/// `trafficmon serve`: capture (or replay) and serve metrics, JSON and the page.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Capture from an interface (or replay a file), collect flows, and serve Prometheus metrics and JSON.",
        discussion: """
            Live capture needs root, or the capabilities cap_net_raw,cap_net_admin on the binary. \
            --read FILE replays a capture file as fast as it can and then keeps serving what it \
            computed (no privileges needed). --netflow and --sflow collect flows from routers and \
            switches, with or without --interface. SIGINT/SIGTERM close the open window and exit 0.
            """)

    @Option(help: ArgumentHelp("Capture live on this interface (see: trafficmon interfaces); repeatable: several interfaces feed one set of windows.", valueName: "name"))
    var interface: [String] = []

    @Option(name: .customLong("capture-threads"), help: ArgumentHelp("Threads that read, decode and count each interface, joined in one PACKET_FANOUT group (live only).", valueName: "n"))
    var captureThreads: Int = 1

    @Option(help: ArgumentHelp("Replay this capture file (pcap or pcapng) instead of capturing live.", valueName: "file"))
    var read: String?

    @Option(help: ArgumentHelp("Collect NetFlow v5, v9 and IPFIX on this UDP address: HOST:PORT, [IPv6]:PORT or :PORT (every address); repeatable.", valueName: "address"))
    var netflow: [String] = []

    @Option(help: ArgumentHelp("Collect sFlow v5 on this UDP address: HOST:PORT, [IPv6]:PORT or :PORT; repeatable.", valueName: "address"))
    var sflow: [String] = []

    @Option(name: .customLong("flow-direction"), help: ArgumentHelp("Flow records counted, where the record says its direction: ingress, egress or both (records that do not say always count).", valueName: "direction"))
    var flowDirection: String = "ingress"

    @Option(name: .customLong("flow-buffer-size"), help: ArgumentHelp("Receive buffer of each flow socket in MiB (beyond net.core.rmem_max only as root).", valueName: "mib"))
    var flowBufferSize: Int = 32

    @Option(name: .customLong("max-flow-exporters"), help: ArgumentHelp("Flow exporters tracked one by one (templates, health); later ones are counted as 'other'.", valueName: "n"))
    var maxFlowExporters: Int = 256

    @OptionGroup var aggregation: AggregationOptions

    @Option(help: ArgumentHelp("Address to serve HTTP on: HOST:PORT, [IPv6]:PORT or :PORT.", valueName: "address"))
    var listen: String = "127.0.0.1:9000"

    @Option(help: ArgumentHelp("Closed windows kept in memory for /stats/history.", valueName: "windows"))
    var history: Int = 720

    @Option(help: ArgumentHelp("Clients, servers and services listed one by one in records and per-window metrics; the rest is folded into 'other'.", valueName: "n"))
    var top: Int = 50

    @Option(name: .customLong("party-ttl"), help: ArgumentHelp("How long a client or server keeps its sticky counters (trafficmon_client_*_total, trafficmon_server_*_total) after it was last in a window's top.", valueName: "duration"))
    var partyTTL: String = "10m"

    @Option(name: .customLong("max-party-series"), help: ArgumentHelp("Clients (and, apart, servers) with sticky counters at most; later ones wait until some expire.", valueName: "n"))
    var maxPartySeries: Int = 1000

    @Option(name: .customLong("max-network-series"), help: ArgumentHelp("Named networks (the first in the --networks file) with counters of their own (trafficmon_network_*_total); the rest count as network=\"other\".", valueName: "n"))
    var maxNetworkSeries: Int = 100

    @Flag(name: .customLong("enable-debug-inject"), help: "Serve POST /debug/inject (off by default).")
    var enableDebugInject = false

    @Option(help: ArgumentHelp("Bytes kept of each captured frame (live); byte counts always use the wire length.", valueName: "bytes"))
    var snaplen: Int32 = 256

    @Option(name: .customLong("buffer-size"), help: ArgumentHelp("Kernel capture buffer in MiB (live).", valueName: "mib"))
    var bufferSize: Int32 = 32

    @Flag(name: .customLong("immediate-mode"), help: "Deliver every packet at once instead of in 100 ms batches (live; more wake-ups).")
    var immediateMode = false

    @Option(help: ArgumentHelp("SQLite file that keeps closed windows across restarts.", valueName: "path"))
    var db: String = "./trafficmon.sqlite"

    @Flag(name: .customLong("no-db"), help: "Keep history in memory only.")
    var noDB = false

    @Option(help: ArgumentHelp("Delete stored windows older than this before the newest one (1h, 7d, 30d, ...).", valueName: "duration"))
    var retention: String = "7d"

    @Option(name: .customLong("auth-token-file"), help: ArgumentHelp("File of bearer tokens, one per line: every route but /healthz then needs 'Authorization: Bearer <token>'.", valueName: "file"))
    var authTokenFile: String?

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("PEM certificate (chain) to serve HTTPS; needs --tls-key.", valueName: "file"))
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("PEM private key for --tls-cert.", valueName: "file"))
    var tlsKey: String?

    @Option(name: .customLong("max-connections"), help: ArgumentHelp("HTTP connections open at once; at the cap, the oldest connection still sending its request makes way for a new one.", valueName: "n"))
    var maxConnections: Int = 512

    @Option(name: .customLong("allowed-host"), help: ArgumentHelp("A Host name (besides localhost and loopback addresses) that a server listening on a loopback address answers to; repeatable. Others get 421, against DNS rebinding.", valueName: "name"))
    var allowedHosts: [String] = []

    @Option(help: ArgumentHelp("After opening the capture, drop root privileges to this user (like tcpdump -Z).", valueName: "name"))
    var user: String?

    @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel: String = "info"

    func validate() throws {
        let flows = !netflow.isEmpty || !sflow.isEmpty
        switch (interface.isEmpty, read) {
        case (true, nil) where !flows:
            throw ValidationError("give --interface NAME to capture live, --read FILE to replay a file, or --netflow/--sflow ADDRESS to collect flows")
        case (false, .some): throw ValidationError("--interface and --read exclude each other; give one")
        default: break
        }
        if read != nil && flows {
            throw ValidationError("--netflow and --sflow collect live flows; a replayed file (--read) runs on packet time: give them with --interface or alone")
        }
        var seen: Set<String> = []
        for (flag, value) in netflow.map({ ("--netflow", $0) }) + sflow.map({ ("--sflow", $0) }) {
            let address: FlowListenAddress
            do { address = try FlowListenAddress(parsing: value) } catch { throw ValidationError("\(flag): \(error.description)") }
            // Port 0 asks the kernel for a free port: never the same one twice.
            guard address.port == 0 || seen.insert(address.description).inserted else {
                throw ValidationError("\(flag) \(value): that address is given twice; each flow input needs its own")
            }
        }
        guard FlowDirectionFilter(rawValue: flowDirection) != nil else {
            throw ValidationError("--flow-direction must be ingress, egress or both, not '\(flowDirection)'")
        }
        guard (1...4096).contains(flowBufferSize) else { throw ValidationError("--flow-buffer-size must be from 1 to 4096 MiB, not \(flowBufferSize)") }
        guard (0...100_000).contains(maxFlowExporters) else {
            throw ValidationError("--max-flow-exporters must be from 0 to 100000, not \(maxFlowExporters)")
        }
        guard (1...64).contains(captureThreads) else { throw ValidationError("--capture-threads must be from 1 to 64, not \(captureThreads)") }
        if read != nil && captureThreads > 1 {
            throw ValidationError("--capture-threads spreads a live interface over threads; a file (--read) is replayed on one")
        }
        if Set(interface).count != interface.count { throw ValidationError("--interface lists an interface twice") }
        guard (1...10_000).contains(top) else { throw ValidationError("--top must be from 1 to 10000, not \(top)") }
        guard (0...100_000).contains(maxPartySeries) else {
            throw ValidationError("--max-party-series must be from 0 to 100000, not \(maxPartySeries)")
        }
        guard (0...100_000).contains(maxNetworkSeries) else {
            throw ValidationError("--max-network-series must be from 0 to 100000, not \(maxNetworkSeries)")
        }
        _ = try partyTTLNanoseconds()
        guard (1...1_000_000).contains(history) else { throw ValidationError("--history must be from 1 to 1000000, not \(history)") }
        guard (64...262_144).contains(snaplen) else { throw ValidationError("--snaplen must be from 64 to 262144, not \(snaplen)") }
        guard (1...4096).contains(bufferSize) else { throw ValidationError("--buffer-size must be from 1 to 4096 MiB, not \(bufferSize)") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
        do { _ = try ListenAddress(parsing: listen) } catch { throw ValidationError(error.description) }
        guard (1...1_000_000).contains(maxConnections) else {
            throw ValidationError("--max-connections must be from 1 to 1000000, not \(maxConnections)")
        }
        for name in allowedHosts where HostCheck.hostPart(of: name) == nil {
            throw ValidationError("--allowed-host '\(name)' is not a host name or address (for example monitor.example.com, 192.0.2.7 or [2001:db8::7])")
        }
        guard let nanos = TimeSpan.nanoseconds(retention), nanos >= 1_000_000_000 else {
            throw ValidationError("--retention must be a duration of at least 1s, such as 7d or 12h, not '\(retention)'")
        }
        _ = nanos
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together; give both") }
        if noDB && db != "./trafficmon.sqlite" { throw ValidationError("--db and --no-db exclude each other; give one") }
        if db.isEmpty { throw ValidationError("--db needs a file path (or use --no-db)") }
    }

    func partyTTLNanoseconds() throws -> Int64 {
        guard let nanos = TimeSpan.nanoseconds(partyTTL), nanos >= Timestamp.nanosPerSecond else {
            throw ValidationError("--party-ttl must be a duration of at least 1s, such as 10m or 1h, not '\(partyTTL)'")
        }
        return nanos
    }

    /// What `prepare()` did while privileged: the open capture, secrets read, root dropped.
    struct Prepared: Sendable {
        var sources: [PacketSource]
        var collectors: [FlowCollector]
        var localNetworks: LocalNetworks
        /// The named networks and the AS and country databases (`--networks`, `--asn-db`, `--country-db`).
        var who: WindowAggregator.Configuration
        var options: TrafficServer.Options
        var server: ServerConfiguration
        var logger: Logger
    }

    func run() async throws {
        try await run(prepare())
    }

    /// The privileged part, on the main thread: logging, token and TLS files (often
    /// root-only), the capture, and then dropping to `--user`.
    func prepare() throws -> Prepared {
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
        server.partyTTL = try partyTTLNanoseconds()
        server.maxPartySeries = maxPartySeries
        server.maxNetworkSeries = maxNetworkSeries
        server.historySize = history
        server.enableDebugInject = enableDebugInject
        server.version = Trafficmon.version
        server.limits.maxConnections = maxConnections
        server.allowedHosts = allowedHosts

        var options = TrafficServer.Options()
        if let authTokenFile {
            do {
                options.authTokens = try BearerAuthMiddleware<TrafficServer.Context>.loadTokens(authTokenFile)
            } catch {
                throw UserFacingError(error)
            }
        }
        if let tlsCert, let tlsKey {
            options.tls = try Self.loadTLS(certificate: tlsCert, key: tlsKey)
        }

        // Read while privileged, like the token and TLS files.
        var who = WindowAggregator.Configuration()
        try aggregation.addWho(to: &who)

        var local = try aggregation.localNetworks()
        var sources: [PacketSource] = []
        do {
            if let read {
                sources = [try PacketSource.openFile(read, filter: aggregation.filter)]
            }
            for name in interface {
                var live = PacketSource.LiveOptions(interface: name)
                live.filter = aggregation.filter
                live.snapshotLength = snaplen
                live.bufferSize = bufferSize << 20
                live.immediateMode = immediateMode
                let handles = try PacketSource.openFanout(live, handles: captureThreads)
                for address in handles.first?.interfaceAddresses ?? [] {
                    local.add(NetworkPrefix(address: address, length: address.isIPv6 ? 128 : 32))
                }
                sources += handles
            }
        } catch {
            throw UserFacingError(error)
        }
        // Before dropping root: a port below 1024, and a receive buffer past net.core.rmem_max.
        var collectors: [FlowCollector] = []
        let direction = FlowDirectionFilter(rawValue: flowDirection) ?? .ingress
        let inputs = netflow.map { (FlowCollector.Kind.netflow, "--netflow", $0) } + sflow.map { (FlowCollector.Kind.sflow, "--sflow", $0) }
        for (kind, flag, text) in inputs {
            do {
                let collector = try FlowCollector(
                    kind: kind, listen: try FlowListenAddress(parsing: text), receiveBuffer: flowBufferSize << 20, direction: direction,
                    maxExporters: maxFlowExporters)
                if collector.health.receiveBuffer < flowBufferSize << 20 {
                    logger.warning("\(flag): the kernel granted a receive buffer of \(collector.health.receiveBuffer >> 10) KiB, not \(flowBufferSize) MiB (raise net.core.rmem_max, or start as root)")
                }
                collectors.append(collector)
            } catch {
                throw UserFacingError("\(flag) \(text): \(error.description)")
            }
        }
        if let user { try Privileges.drop(to: user) }
        return Prepared(sources: sources, collectors: collectors, localNetworks: local, who: who, options: options, server: server, logger: logger)
    }

    /// The unprivileged part: the database, the server, until a signal.
    func run(_ prepared: Prepared) async throws {
        var options = prepared.options
        let server = prepared.server
        let logger = prepared.logger
        if !noDB {
            do {
                options.store = try WindowStore(path: db)
            } catch {
                throw UserFacingError(error)
            }
            options.retention = TimeSpan.nanoseconds(retention)
        }
        if !allowedHosts.isEmpty && !server.listen.isLoopback {
            logger.notice("--allowed-host has no effect: \(server.listen) is not a loopback address, so every Host is served")
        }
        if options.authTokens.isEmpty && !server.listen.isLoopback {
            logger.warning("listening on \(server.listen) without authentication: anyone who can reach it can read the traffic figures (use --auth-token-file)")
        }
        var windowConfiguration = WindowAggregator.Configuration(
            windowLength: try aggregation.windowLength(), localNetworks: prepared.localNetworks,
            servicePorts: try aggregation.servicePortSet(), maxClients: aggregation.maxClients, top: top,
            oversizedAbove: prepared.sources.first?.oversizedAbove)
        windowConfiguration.networks = prepared.who.networks
        windowConfiguration.origins = prepared.who.origins

        let trafficServer: TrafficServer
        do {
            trafficServer = try await TrafficServer(
                configuration: server, sources: prepared.sources, collectors: prepared.collectors, aggregation: windowConfiguration,
                options: options, logger: logger)
        } catch {
            throw UserFacingError(error)
        }
        var inputs: [String] = []
        if let read { inputs.append("replaying \(read)") }
        if !interface.isEmpty {
            inputs.append("capturing on \(interface.joined(separator: ", "))\(captureThreads > 1 ? " with \(captureThreads) threads each" : "")")
        }
        for collector in prepared.collectors {
            inputs.append("collecting \(collector.kind.rawValue) on \(collector.listen) (port \(collector.port))")
        }
        let what = inputs.joined(separator: "; ")
        logger.info("starting (\(what), local networks: \(prepared.localNetworks.prefixes.map(\.description).joined(separator: ", ")))")
        do {
            try await trafficServer.runService()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw UserFacingError("cannot listen on \(server.listen): the address is already in use (another trafficmon? pick one with --listen)")
        } catch let error as IOError where error.errnoCode == EACCES {
            throw UserFacingError("cannot listen on \(server.listen): permission denied (ports below 1024 need root or cap_net_bind_service)")
        } catch let error as IOError where error.errnoCode == EADDRNOTAVAIL {
            throw UserFacingError("cannot listen on \(server.listen): no such local address")
        }
    }

    static func loadTLS(certificate: String, key: String) throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        let privateKey: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificate)
        } catch {
            throw UserFacingError("cannot use --tls-cert \(certificate): it is not a readable PEM certificate (\(error))")
        }
        guard !chain.isEmpty else { throw UserFacingError("cannot use --tls-cert \(certificate): it holds no certificate") }
        do {
            privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
        } catch {
            throw UserFacingError("cannot use --tls-key \(key): it is not a readable PEM private key (\(error))")
        }
        return TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
    }
}
