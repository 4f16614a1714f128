/// An address block in CIDR notation, such as `10.0.0.0/29` or `2001:db8::1/128`.
///
/// ```swift
/// let net = try NetworkPrefix(parsing: "10.0.0.0/29")
/// net.contains(IPAddress("10.0.0.3")!)   // true
/// ```
public struct NetworkPrefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int
    let maskHigh: UInt64
    let maskLow: UInt64

    /// A prefix from an address and a length; host bits are cleared.
    public init(address: IPAddress, length: Int) {
        let maxLength = address.isIPv6 ? 128 : 32
        let length = max(0, min(length, maxLength))
        var mh: UInt64 = 0, ml: UInt64 = 0
        if address.isIPv6 {
            mh = length >= 64 ? ~0 : (length == 0 ? 0 : ~0 << UInt64(64 - length))
            ml = length <= 64 ? 0 : (length == 128 ? ~0 : ~0 << UInt64(128 - length))
        } else {
            ml = length == 0 ? 0 : (UInt64(UInt32.max) << UInt64(32 - length)) & UInt64(UInt32.max)
        }
        var network = address
        network.high &= mh
        network.low &= ml
        self.address = network
        self.length = length
        self.maskHigh = mh
        self.maskLow = ml
    }

    /// Parses `ADDRESS/LENGTH`, or a bare address (a host prefix).
    public init(parsing text: String) throws(NetworkPrefixError) {
        let utf8 = text.utf8
        let slash = utf8.firstIndex(of: UInt8(ascii: "/"))
        guard let address = IPAddress(text[..<(slash ?? text.endIndex)]) else { throw NetworkPrefixError(text: text) }
        var length = address.isIPv6 ? 128 : 32
        if let slash {
            // ASCII digits only (no sign, no space), at most the address's bit count.
            let digits = utf8[utf8.index(after: slash)...]
            guard !digits.isEmpty else { throw NetworkPrefixError(text: text) }
            var value = 0
            for b in digits {
                guard b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") else { throw NetworkPrefixError(text: text) }
                value = value * 10 + Int(b - UInt8(ascii: "0"))
                guard value <= length else { throw NetworkPrefixError(text: text) }
            }
            length = value
        }
        self.init(address: address, length: length)
    }

    /// Whether `ip` lies inside this block.
    @inline(__always)
    public func contains(_ ip: IPAddress) -> Bool {
        ip.isIPv6 == address.isIPv6 && (ip.high & maskHigh) == address.high && (ip.low & maskLow) == address.low
    }

    public var description: String { "\(address)/\(length)" }
}

/// A `--local-net` value that is not an address block.
public struct NetworkPrefixError: Error, CustomStringConvertible, Sendable {
    public let text: String
    public var description: String {
        "'\(text)' is not a network in CIDR notation (for example 10.0.0.0/8 or 2001:db8::/32)"
    }
}

/// The set of local networks that decides which side of a packet is the monitored one.
///
/// ```swift
/// let local = LocalNetworks([try NetworkPrefix(parsing: "10.0.0.0/8")])
/// local.contains(IPAddress("10.1.2.3")!)   // true
/// ```
public struct LocalNetworks: Sendable {
    private(set) var v4: [NetworkPrefix]
    private(set) var v6: [NetworkPrefix]
    /// The packet path's view: `mask << 32 | network` per IPv4 prefix.
    private(set) var v4Rules: [UInt64] = []
    /// The first two IPv4 rules held inline (most deployments name one or two blocks), so
    /// the packet path reads no array for them; an unused one matches nothing (network bits
    /// outside a zero mask).
    private(set) var v4First: (UInt64, UInt64) = (LocalNetworks.noRule, LocalNetworks.noRule)
    /// More than two IPv4 rules: the rest are read from `v4Rules`.
    private(set) var v4More = false
    static let noRule: UInt64 = 1
    /// (network high, network low, mask high, mask low) per IPv6 prefix.
    private(set) var v6Rules: [(UInt64, UInt64, UInt64, UInt64)] = []

    public init(_ prefixes: [NetworkPrefix] = []) {
        v4 = []
        v6 = []
        for p in prefixes { add(p) }
    }

    public mutating func add(_ prefix: NetworkPrefix) {
        if prefix.address.isIPv6 {
            guard !v6.contains(prefix) else { return }
            v6.append(prefix)
            v6Rules.append((prefix.address.high, prefix.address.low, prefix.maskHigh, prefix.maskLow))
        } else {
            guard !v4.contains(prefix) else { return }
            v4.append(prefix)
            v4Rules.append(prefix.maskLow << 32 | prefix.address.low)
            switch v4Rules.count {
            case 1: v4First.0 = v4Rules[0]
            case 2: v4First.1 = v4Rules[1]
            default: v4More = true
            }
        }
    }

    /// Every prefix, IPv4 first.
    public var prefixes: [NetworkPrefix] { v4 + v6 }
    public var isEmpty: Bool { v4.isEmpty && v6.isEmpty }

    @inline(__always)
    public func contains(_ ip: IPAddress) -> Bool {
        if ip.isIPv6 {
            for r in v6Rules where ip.high & r.2 == r.0 && ip.low & r.3 == r.1 { return true }
        } else {
            let a = ip.low
            let (r0, r1) = v4First
            if a & (r0 >> 32) == r0 & 0xFFFF_FFFF || a & (r1 >> 32) == r1 & 0xFFFF_FFFF { return true }
            guard v4More else { return false }
            for r in v4Rules.dropFirst(2) where a & (r >> 32) == r & 0xFFFF_FFFF { return true }
        }
        return false
    }
}
