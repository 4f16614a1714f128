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
        if let networks {
            do {
                configuration.networks = try NetworksFile.load(path: networks)
            } catch {
                throw UserFacingError("--networks \(error)")
            }
        }
        if asnDB != nil || countryDB != nil {
            do {
                configuration.origins = try MaxMindOrigins(asnDatabase: asnDB, countryDatabase: countryDB)
            } catch {
                throw UserFacingError("\(error.path == asnDB ? "--asn-db" : "--country-db") \(error)")
            }
        }
    }

    func validateWho() throws {
        for (flag, value) in [("--networks", networks), ("--asn-db", asnDB), ("--country-db", countryDB)] where value?.isEmpty == true {
            throw ValidationError("\(flag) needs a file path")
        }
    }
}
