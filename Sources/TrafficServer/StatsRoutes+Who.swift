import Hummingbird
import TrafficCore

extension StatsRoutes {
    /// `network=`, `asn=` and `country=` of `/stats/history`: a name of the `--networks`
    /// file (or `unknown`, `other`), an AS number (`64500` or `AS64500`, or `unknown`,
    /// `other`), a country code (`FR`, any case, or `unknown`, `other`). Each needs the
    /// flag that gives it; anything else is a 400 naming the value.
    ///
    /// ```swift
    /// let filter = try StatsRoutes.whoFilter(network: "office", asn: nil, country: nil, state: state)
    /// ```
    static func whoFilter(network: String?, asn: String?, country: String?, state: TrafficState) throws -> WhoFilter {
        let configuration = state.engine.configuration
        var filter = WhoFilter()
        if let network {
            guard let networks = configuration.networks else {
                throw badRequest("network= needs a networks file (trafficmon serve --networks FILE)")
            }
            guard network == NamedNetworks.unknown || network == NamedNetworks.other || networks.names.contains(network) else {
                throw badRequest("no network named '\(network.prefix(80))' in the networks file (nor unknown, other)")
            }
            filter.network = network
        }
        if let asn {
            guard configuration.origins?.providesASN == true else {
                throw badRequest("asn= needs an ASN database (trafficmon serve --asn-db FILE)")
            }
            let digits = asn.uppercased().hasPrefix("AS") ? String(asn.dropFirst(2)) : asn
            if asn == ClientOrigin.unknown || asn == ClientOrigin.other {
                filter.asn = asn
            } else if !digits.isEmpty, digits.count <= 10, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                      let number = UInt32(digits), String(number) == digits {
                filter.asn = String(number)
            } else {
                throw badRequest("asn must be an AS number such as 64500 or AS64500 (or unknown, other), not '\(asn.prefix(40))'")
            }
        }
        if let country {
            guard configuration.origins?.providesCountry == true else {
                throw badRequest("country= needs a country database (trafficmon serve --country-db FILE)")
            }
            let code = country.uppercased()
            if country == ClientOrigin.unknown || country == ClientOrigin.other {
                filter.country = country
            } else if code.utf8.count == 2, code.utf8.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) {
                filter.country = code
            } else {
                throw badRequest("country must be a two-letter ISO 3166 code such as FR (or unknown, other), not '\(country.prefix(40))'")
            }
        }
        return filter
    }
}
