import ArgumentParser
import TrafficCore
import TrafficEnrichment

extension AggregationOptions {
    /// Reads `--networks` and opens `--asn-db` and `--country-db` into `configuration`;
    /// a file that cannot be used ends the start with one line naming it (exit 2).
    ///
    /// ```swift
    /// var configuration = WindowAggregator.Configuration()
    /// try aggregation.addWho(to: &configuration)
    /// ```
    func addWho(to configuration: inout WindowAggregator.Configuration) throws {
        configuration.networks = try readNetworks()
        try addOrigins(to: &configuration)
    }

    /// Opens `--asn-db` and `--country-db` into `configuration` (`addWho` without the
    /// networks, for a caller that reads them with `readNetworks()` itself).
    func addOrigins(to configuration: inout WindowAggregator.Configuration) throws {
        if asnDB != nil || countryDB != nil {
            do {
                configuration.origins = try MaxMindOrigins(asnDatabase: asnDB, countryDatabase: countryDB)
            } catch {
                throw UserFacingError("\(error.path == asnDB ? "--asn-db" : "--country-db") \(error)")
            }
        }
    }

    /// The `--networks` file's networks (`nil` without the flag); a file that cannot be used
    /// is one line naming it.
    func readNetworks() throws -> NamedNetworks? {
        guard let networks else { return nil }
        do {
            return try NetworksFile.load(path: networks)
        } catch {
            throw UserFacingError("--networks \(error)")
        }
    }

    func validateWho() throws {
        for (flag, value) in [("--networks", networks), ("--asn-db", asnDB), ("--country-db", countryDB)] where value?.isEmpty == true {
            throw ValidationError("\(flag) needs a file path")
        }
    }
}
