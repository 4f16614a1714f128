import CMaxMindDB
import Foundation
import TrafficCore

/// A MaxMind DB file (GeoLite2, DB-IP lite or any MMDB) opened with libmaxminddb, memory
/// mapped and read-only.
///
/// ```swift
/// let db = try MaxMindDB(path: "GeoLite2-ASN.mmdb")
/// db.databaseType                                                  // "GeoLite2-ASN"
/// db.uint32(for: IPAddress("192.0.2.1")!, at: MaxMindDB.Path(["autonomous_system_number"]))
/// ```
///
/// Not thread-safe by itself for the paths it allocates; `MaxMindOrigins` serialises its use.
public final class MaxMindDB: @unchecked Sendable {
    private let handle: UnsafeMutablePointer<MMDB_s>
    /// The file it was opened from.
    public let path: String
    /// The metadata's `database_type` (`GeoLite2-ASN`, `GeoLite2-Country`, ...).
    public let databaseType: String
    /// 4 or 6: the address family of the search tree.
    public let ipVersion: Int
    public let nodeCount: Int
    public let recordSize: Int

    /// Opens `path`; a missing, unreadable or non-MMDB file throws.
    public init(path: String) throws(MaxMindDBError) {
        self.path = path
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw MaxMindDBError(path: path, problem: FileManager.default.fileExists(atPath: path) ? "cannot be read" : "does not exist")
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw MaxMindDBError(path: path, problem: "is a directory, not a MaxMind DB file")
        }
        handle = UnsafeMutablePointer<MMDB_s>.allocate(capacity: 1)
        let status = MMDB_open(path, UInt32(MMDB_MODE_MMAP), handle)
        guard status == MMDB_SUCCESS else {
            handle.deallocate()
            let reason = String(cString: MMDB_strerror(status))
            throw MaxMindDBError(path: path, problem: "is not a MaxMind DB file (libmaxminddb: \(reason))")
        }
        let metadata = handle.pointee.metadata
        databaseType = metadata.database_type.map { String(cString: $0) } ?? ""
        ipVersion = Int(metadata.ip_version)
        nodeCount = Int(metadata.node_count)
        recordSize = Int(metadata.record_size)
    }

    deinit {
        MMDB_close(handle)
        handle.deallocate()
    }

    /// A lookup path into a record's data (`["country", "iso_code"]`), as libmaxminddb's
    /// NULL-terminated array of C strings, allocated once.
    public final class Path: @unchecked Sendable {
        let strings: UnsafeMutablePointer<UnsafePointer<CChar>?>
        let count: Int

        public init(_ keys: [String]) {
            count = keys.count
            strings = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: keys.count + 1)
            for (i, key) in keys.enumerated() { strings[i] = UnsafePointer(strdup(key)) }
            strings[keys.count] = nil
        }

        deinit {
            for i in 0..<count { free(UnsafeMutablePointer(mutating: strings[i])) }
            strings.deallocate()
        }
    }

    /// The record holding `ip`, read at each of `paths`; `nil` when no network in the
    /// file holds the address (or an IPv6 address meets an IPv4-only tree).
    public func lookup(_ ip: IPAddress, paths: [Path]) -> [Value]? {
        var error: Int32 = 0
        var result = withSocketAddress(of: ip) { MMDB_lookup_sockaddr(handle, $0, &error) }
        guard error == MMDB_SUCCESS, result.found_entry else { return nil }
        return paths.map { path in
            var data = MMDB_entry_data_s()
            let status = MMDB_aget_value(&result.entry, &data, path.strings)
            guard status == MMDB_SUCCESS, data.has_data else { return .missing }
            switch Int32(data.type) {
            case MMDB_DATA_TYPE_UTF8_STRING:
                guard let bytes = data.utf8_string else { return .missing }
                return .string(bytes.withMemoryRebound(to: UInt8.self, capacity: Int(data.data_size)) {
                    String(decoding: UnsafeBufferPointer(start: $0, count: Int(data.data_size)), as: UTF8.self)
                })
            case MMDB_DATA_TYPE_UINT16: return .unsigned(UInt64(data.uint16))
            case MMDB_DATA_TYPE_UINT32: return .unsigned(UInt64(data.uint32))
            case MMDB_DATA_TYPE_UINT64: return .unsigned(data.uint64)
            case MMDB_DATA_TYPE_INT32: return data.int32 >= 0 ? .unsigned(UInt64(data.int32)) : .other
            default: return .other
            }
        }
    }

    /// A value read from a record.
    public enum Value: Hashable, Sendable {
        case string(String)
        case unsigned(UInt64)
        /// The key holds a value of another type (a map, a double, ...).
        case other
        /// The record has no such key.
        case missing
    }

    private func withSocketAddress<R>(of ip: IPAddress, _ body: (UnsafePointer<sockaddr>) -> R) -> R {
        if ip.isIPv6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            withUnsafeMutableBytes(of: &a.sin6_addr) { bytes in
                for i in 0..<8 {
                    bytes[i] = UInt8(truncatingIfNeeded: ip.high >> UInt64(56 - 8 * i))
                    bytes[8 + i] = UInt8(truncatingIfNeeded: ip.low >> UInt64(56 - 8 * i))
                }
            }
            return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body) }
        }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = ip.ipv4Value.bigEndian
        return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body) }
    }
}

/// A database file that cannot be used: one line naming the file.
public struct MaxMindDBError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let problem: String

    public var description: String { "\(path) \(problem)" }
}
