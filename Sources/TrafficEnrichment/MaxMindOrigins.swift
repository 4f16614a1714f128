import TrafficCore

/// The clients' AS and country from MaxMind DB files (`--asn-db`, `--country-db`),
/// through a bounded cache: a record's build looks up every client of its window, and
/// most clients come back window after window.
///
/// The ASN database gives `autonomous_system_number` and `autonomous_system_organization`
/// (GeoLite2-ASN, DB-IP ASN lite); the country database `country.iso_code` (GeoLite2
/// Country or City, DB-IP country lite). A code that is not two letters A-Z counts as
/// `unknown`, so the country labels stay bounded whatever the file holds.
///
/// ```swift
/// let origins = try MaxMindOrigins(asnDatabase: "GeoLite2-ASN.mmdb", countryDatabase: nil)
/// origins.origins(of: [IPAddress("192.0.2.1")!])[0].asnLabel
/// ```
public final class MaxMindOrigins: OriginLookup, @unchecked Sendable {
    public let asnDatabase: MaxMindDB?
    public let countryDatabase: MaxMindDB?
    /// Addresses kept per cache generation (two generations: at most twice this many).
    public let cacheSize: Int
    private let cache: LockedValue<Cache>
    private let asnPaths = [MaxMindDB.Path(["autonomous_system_number"]), MaxMindDB.Path(["autonomous_system_organization"])]
    private let countryPaths = [MaxMindDB.Path(["country", "iso_code"])]

    public var providesASN: Bool { asnDatabase != nil }
    public var providesCountry: Bool { countryDatabase != nil }

    /// Opens the databases given; a missing, unreadable or non-MMDB file, or a database of
    /// the other kind (a country database as `--asn-db`, say), throws.
    public init(asnDatabase: String?, countryDatabase: String?, cacheSize: Int = 100_000) throws(MaxMindDBError) {
        self.asnDatabase = try asnDatabase.map { path throws(MaxMindDBError) in
            let db = try MaxMindDB(path: path)
            try Self.check(db, wants: "an ASN database (GeoLite2-ASN, DB-IP ASN lite)", accepts: ["asn", "isp"], refuses: ["country", "city"])
            return db
        }
        self.countryDatabase = try countryDatabase.map { path throws(MaxMindDBError) in
            let db = try MaxMindDB(path: path)
            try Self.check(db, wants: "a country database (GeoLite2-Country or -City, DB-IP country lite)", accepts: ["country", "city"], refuses: ["asn"])
            return db
        }
        self.cacheSize = max(1, cacheSize)
        cache = LockedValue(Cache())
    }

    /// Refuses a database whose `database_type` names the other kind and not this one; a
    /// type that names neither (a custom MMDB) is accepted.
    static func check(_ db: MaxMindDB, wants: String, accepts: [String], refuses: [String]) throws(MaxMindDBError) {
        let type = db.databaseType.lowercased()
        if refuses.contains(where: type.contains) && !accepts.contains(where: type.contains) {
            throw MaxMindDBError(path: db.path, problem: "is a '\(db.databaseType)' database, not \(wants)")
        }
    }

    /// How many addresses the cache holds now (at most twice `cacheSize`).
    public var cachedAddresses: Int { cache.withLock { $0.current.count + $0.previous.count } }

    public func origins(of addresses: [IPAddress]) -> [ClientOrigin] {
        cache.withLock { cache in
            addresses.map { ip in
                if let known = cache.current[ip] { return known }
                let origin = cache.previous[ip] ?? find(ip, orgs: &cache.orgs)
                if cache.current.count >= cacheSize {
                    cache.previous = cache.current
                    cache.current = [:]
                }
                cache.current[ip] = origin
                return origin
            }
        }
    }

    /// Looks `ip` up in the databases.
    private func find(_ ip: IPAddress, orgs: inout [UInt32: String]) -> ClientOrigin {
        var origin = ClientOrigin()
        if let asnDatabase, let values = asnDatabase.lookup(ip, paths: asnPaths),
           case .unsigned(let number) = values[0], number <= UInt64(UInt32.max) {
            let asn = UInt32(number)
            origin.asn = asn
            if let org = orgs[asn] {
                origin.asOrg = org
            } else {
                if case .string(let org) = values[1] { origin.asOrg = org }
                orgs[asn] = origin.asOrg
            }
        }
        if let countryDatabase, let values = countryDatabase.lookup(ip, paths: countryPaths),
           case .string(let code) = values[0], Self.isCountryCode(code) {
            origin.country = code
        }
        return origin
    }

    /// Two ASCII letters A-Z.
    static func isCountryCode(_ code: String) -> Bool {
        let bytes = Array(code.utf8)
        return bytes.count == 2 && bytes.allSatisfy { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }
    }

    struct Cache {
        var current: [IPAddress: ClientOrigin] = [:]
        var previous: [IPAddress: ClientOrigin] = [:]
        /// Each AS's organisation, read once (one string shared by its clients).
        var orgs: [UInt32: String] = [:]
    }
}
