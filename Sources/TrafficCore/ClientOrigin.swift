/// Where a client's address is registered: its autonomous system and its country, as an
/// `OriginLookup` (a MaxMind DB, say) knows them.
///
/// ```swift
/// let origin = ClientOrigin(asn: 64500, asOrg: "Example Net", country: "FR")
/// origin.asnLabel   // "64500"
/// ```
public struct ClientOrigin: Hashable, Sendable {
    /// The AS number; `nil` when the address has none (`asn="unknown"`).
    public var asn: UInt32?
    /// The AS organisation (empty when unknown).
    public var asOrg: String
    /// The ISO 3166-1 alpha-2 code; `nil` when the address has none (`country="unknown"`).
    public var country: String?

    public init(asn: UInt32? = nil, asOrg: String = "", country: String? = nil) {
        self.asn = asn
        self.asOrg = asOrg
        self.country = country
    }

    /// The AS number as decimal text, or `unknown`.
    public var asnLabel: String { asn.map { String($0) } ?? ClientOrigin.unknown }
    /// The country code, or `unknown`.
    public var countryLabel: String { country ?? ClientOrigin.unknown }

    /// The label of an address no database entry covers.
    public static let unknown = "unknown"
    /// The label of the clients not known one by one (past `--max-clients`), and of the
    /// ASes folded past `--top`.
    public static let other = "other"
}

/// Looks up where clients come from (`--asn-db`, `--country-db`): once per client per
/// window, when the record is built, never per packet.
///
/// ```swift
/// let origins = lookup.origins(of: [IPAddress("192.0.2.1")!])
/// origins[0].countryLabel
/// ```
public protocol OriginLookup: Sendable {
    /// Whether the lookup knows AS numbers (an ASN database was given).
    var providesASN: Bool { get }
    /// Whether the lookup knows countries (a country database was given).
    var providesCountry: Bool { get }
    /// The origin of each address, in order.
    func origins(of addresses: [IPAddress]) -> [ClientOrigin]
}
