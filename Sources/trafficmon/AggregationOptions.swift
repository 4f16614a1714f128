import ArgumentParser
import Foundation
import TrafficCore

/// The options that shape windows and attribution, shared by `report` and `serve`.
struct AggregationOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Window length: 500ms, 5s, 1m, ... Windows start on multiples of it since the Unix epoch.", valueName: "duration"))
    var window: String = "5s"

    @Option(name: .customLong("local-net"), help: ArgumentHelp("A local network in CIDR notation (repeatable). Decides the direction: in = towards it, out = leaving it; its parties are marked local.", valueName: "cidr"))
    var localNets: [String] = []

    @Option(name: .customLong("service-port"), help: ArgumentHelp("A port that is the server side whenever it appears, such as UDP/50000 (repeatable); otherwise the lower port is.", valueName: "proto/port"))
    var servicePorts: [String] = []

    @Option(help: ArgumentHelp("A BPF capture filter in tcpdump syntax, for example 'tcp port 443'.", valueName: "bpf"))
    var filter: String?

    @Option(name: .customLong("max-clients"), help: ArgumentHelp("Distinct clients tracked one by one per window; later new clients are counted in 'other'.", valueName: "n"))
    var maxClients: Int = 100_000

    @Option(help: ArgumentHelp("A YAML file of named networks (cidr, name, optional labels): client and server traffic is added up per network.", valueName: "file"))
    var networks: String?

    @Option(name: .customLong("asn-db"), help: ArgumentHelp("A MaxMind DB of autonomous systems (GeoLite2-ASN, DB-IP ASN lite): client traffic per AS.", valueName: "file"))
    var asnDB: String?

    @Option(name: .customLong("country-db"), help: ArgumentHelp("A MaxMind DB of countries (GeoLite2-Country or -City, DB-IP country lite): client traffic per country.", valueName: "file"))
    var countryDB: String?

    /// Validated window length in nanoseconds.
    func windowLength() throws -> Int64 {
        guard let nanos = TimeSpan.nanoseconds(window), nanos >= 1_000_000, nanos <= 86_400 * Timestamp.nanosPerSecond,
              nanos % 1_000_000 == 0 else {
            throw ValidationError("--window must be a duration from 1ms to 1d in whole milliseconds, such as 5s or 500ms, not '\(window)'")
        }
        return nanos
    }

    func localNetworks() throws -> LocalNetworks {
        var networks = LocalNetworks()
        for text in localNets {
            do {
                networks.add(try NetworkPrefix(parsing: text))
            } catch {
                throw ValidationError("--local-net: \(error)")
            }
        }
        return networks
    }

    func servicePortSet() throws -> ServicePorts {
        do {
            return try ServicePorts(labels: servicePorts)
        } catch {
            throw ValidationError("--service-port: \(error)")
        }
    }

    func validate() throws {
        _ = try windowLength()
        _ = try localNetworks()
        _ = try servicePortSet()
        try validateWho()
        guard maxClients >= 1 else { throw ValidationError("--max-clients must be at least 1, not \(maxClients)") }
        if let filter, filter.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError("--filter is empty; leave it out to capture everything")
        }
    }
}
