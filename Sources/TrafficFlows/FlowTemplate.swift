/// A NetFlow v9 or IPFIX template (or options template) as the decoder uses it: for each
/// field, what it means to trafficmon and how long it is, so a data record is read with one
/// pass over a short array. Fields trafficmon does not use (and every enterprise-specific
/// field) are skipped by their length.
///
/// ```swift
/// let template = FlowTemplate(fields: [(8, 4), (12, 4), (2, 4), (1, 4)], scopeCount: 0, isOptions: false)
/// template?.minimumRecordLength   // 16
/// ```
struct FlowTemplate: Sendable, Equatable {
    /// A field: its role, and its length (`variableLength`: an IPFIX variable-length field,
    /// whose length precedes it in each record).
    struct Field: Sendable, Equatable {
        var role: FieldRole
        var length: UInt16
    }

    static let variableLength: UInt16 = 0xFFFF
    /// Fields per template at most: real templates have a few dozen.
    static let maximumFields = 128

    let fields: [Field]
    /// Whether this is an options template (its records describe the exporter, not flows).
    let isOptions: Bool
    /// The length of a record when every variable-length field is empty (and exactly the
    /// record length when there is none).
    let minimumRecordLength: Int
    let hasVariableLength: Bool

    /// `nil` for a template that cannot be used: no fields, too many, or a field of length 0.
    init?(fields: [Field], isOptions: Bool) {
        guard !fields.isEmpty, fields.count <= Self.maximumFields else { return nil }
        var length = 0
        var variable = false
        for field in fields {
            if field.length == Self.variableLength {
                variable = true
                length += 1
            } else {
                guard field.length > 0 else { return nil }
                length += Int(field.length)
            }
        }
        self.fields = fields
        self.isOptions = isOptions
        minimumRecordLength = length
        hasVariableLength = variable
    }
}

/// What a template field means to trafficmon: the IANA information elements (NetFlow v9
/// uses the same numbers for these) that attribution, counting, time and sampling need.
enum FieldRole: UInt8, Sendable {
    case skip
    case octets, packets, postOctets, postPackets
    case protocolIdentifier, sourcePort, destinationPort
    case sourceIPv4, destinationIPv4, sourceIPv6, destinationIPv6
    case icmpTypeCode, icmpTypeCodeIPv6, icmpType
    case endSysUpTime, endSeconds, endMilliseconds, endMicroseconds, endNanoseconds
    case systemInitMilliseconds
    case samplingInterval, samplerRandomInterval, samplerID, selectorID
    case samplingPacketInterval, samplingPacketSpace
    case flowDirection

    /// The role of information element `id` (an enterprise-specific one is always skipped).
    init(elementID id: UInt16, enterprise: Bool) {
        guard !enterprise else {
            self = .skip
            return
        }
        switch id {
        case 1: self = .octets
        case 2: self = .packets
        case 23: self = .postOctets
        case 24: self = .postPackets
        case 4: self = .protocolIdentifier
        case 7: self = .sourcePort
        case 11: self = .destinationPort
        case 8: self = .sourceIPv4
        case 12: self = .destinationIPv4
        case 27: self = .sourceIPv6
        case 28: self = .destinationIPv6
        case 32: self = .icmpTypeCode
        case 139: self = .icmpTypeCodeIPv6
        case 176, 178: self = .icmpType
        case 21: self = .endSysUpTime
        case 151: self = .endSeconds
        case 153: self = .endMilliseconds
        case 155: self = .endMicroseconds
        case 157: self = .endNanoseconds
        case 160: self = .systemInitMilliseconds
        case 34: self = .samplingInterval
        case 50: self = .samplerRandomInterval
        case 48: self = .samplerID
        case 302: self = .selectorID
        case 305: self = .samplingPacketInterval
        case 306: self = .samplingPacketSpace
        case 61: self = .flowDirection
        default: self = .skip
        }
    }
}
