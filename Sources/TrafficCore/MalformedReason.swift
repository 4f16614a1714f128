/// Why a frame could not be decoded. Every malformed frame carries exactly one reason.
public enum MalformedReason: UInt8, CaseIterable, Sendable, Codable {
    /// The captured bytes end inside the link header.
    case truncatedLink = 0
    /// The captured bytes end inside the IP header (or its options / extension headers).
    case truncatedIP = 1
    /// The captured bytes end before the transport ports of the first fragment.
    case truncatedTransport = 2
    /// The IP version nibble does not match the link layer's promise.
    case badVersion = 3
    /// IPv4 header length below 20 bytes, or a total length shorter than the header.
    case badHeaderLength = 4

    /// The label used in JSON and in `trafficmon_malformed_packets_total{reason}`.
    public var label: String {
        switch self {
        case .truncatedLink: "truncated_link"
        case .truncatedIP: "truncated_ip"
        case .truncatedTransport: "truncated_transport"
        case .badVersion: "bad_version"
        case .badHeaderLength: "bad_header_length"
        }
    }

    public init?(label: String) {
        guard let value = Self.allCases.first(where: { $0.label == label }) else { return nil }
        self = value
    }
}
