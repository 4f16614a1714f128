import ArgumentParser
import CBuildInfo
import Foundation

/// The `trafficmon` command: `serve`, `report`, `interfaces`.
@main
struct Trafficmon: ParsableCommand {
    static let version = "0.1.0"

    /// What `--version` prints: the version and the build stamp (the git revision, the
    /// number of commits and the commit time, from scripts/build-release), for example
    /// `0.1.0 (git 1a2b3c4d5e6f, 312 commits, 2026-12-04T09:30:00Z)`.
    static var versionDescription: String {
        "\(version) (\(String(cString: trafficmon_build_stamp())))"
    }

    static let configuration = CommandConfiguration(
        commandName: "trafficmon",
        abstract: "Network traffic monitor and Prometheus exporter.",
        discussion: """
            Captures packets with libpcap (a live interface or a capture file), adds them up per \
            client, direction and service in epoch-aligned windows, and reports or serves them.
            Every --flag can also be set with an environment variable TRAFFICMON_<FLAG> \
            (for example TRAFFICMON_WINDOW=10s, TRAFFICMON_LOCAL_NET=10.0.0.0/8,192.168.0.0/16).
            """,
        version: versionDescription,
        subcommands: [ServeCommand.self, ReportCommand.self, InterfacesCommand.self]
    )

    /// Synchronous on purpose: `serve` opens its capture and drops root (`--user`) here,
    /// on the main thread, before the async runtime parks that thread; a credential change
    /// made later from a worker thread would leave the parked main thread as root.
    static func main() {
        let arguments = EnvironmentDefaults.apply(
            to: Array(CommandLine.arguments.dropFirst()),
            environment: ProcessInfo.processInfo.environment)
        do {
            var command = try parseAsRoot(arguments)
            if let serve = command as? ServeCommand {
                let prepared = try serve.prepare()
                runAsync(arguments: arguments) { try await serve.run(prepared) }
            }
            try command.run()
            Foundation.exit(0)
        } catch {
            fail(error, arguments: arguments)
        }
    }

    /// Runs `body` on the async runtime and exits with its outcome; never returns.
    static func runAsync(arguments: [String], _ body: @escaping @Sendable () async throws -> Void) -> Never {
        Task {
            do {
                try await body()
                Foundation.exit(0)
            } catch {
                fail(error, arguments: arguments)
            }
        }
        dispatchMain()
    }

    /// Ends the process for `error`: one line on stderr and a non-zero status (help and
    /// version requests print as usual).
    static func fail(_ error: any Error, arguments: [String]) -> Never {
        if let error = error as? UserFacingError {
            FileHandle.standardError.write(Data("trafficmon: \(error.message)\n".utf8))
            Foundation.exit(error.status)
        }
        if exitCode(for: error) == .success { exit(withError: error) }
        let message = Self.message(for: error).trimmingCharacters(in: .whitespacesAndNewlines)
        let subcommand = arguments.first.flatMap { name in
            configuration.subcommands.contains { $0.configuration.commandName == name } ? name : nil
        }
        let hint = subcommand.map { " (see: trafficmon \($0) --help)" } ?? " (see: trafficmon --help)"
        FileHandle.standardError.write(Data("trafficmon: \(message.split(whereSeparator: \.isNewline).joined(separator: " "))\(hint)\n".utf8))
        Foundation.exit(exitCode(for: error).rawValue)
    }
}

/// An error that ends the process with one line on stderr and a given status.
struct UserFacingError: Error {
    var message: String
    var status: Int32 = 2

    init(_ message: String, status: Int32 = 2) {
        self.message = message
        self.status = status
    }

    init(_ error: any Error, status: Int32 = 2) {
        self.message = String(describing: error)
        self.status = status
    }
}
