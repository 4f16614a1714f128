/// Why (part of) a datagram could not be decoded. The datagram, or the rest of it from the
/// faulty set or sample on, is dropped and counted by reason for its exporter; nothing a
/// datagram holds stops the collector.
///
/// ```swift
/// health.errors[FlowDecodeError.badTemplate.rawValue] += 1
/// FlowDecodeError.badTemplate.label   // "bad_template"
/// ```
public enum FlowDecodeError: Int, CaseIterable, Sendable {
    /// Shorter than its header, or a header that claims more than the datagram holds.
    case truncated
    /// Not a version this input reads (NetFlow 5, 9, IPFIX 10; sFlow 5).
    case badVersion
    /// A set, record or sample whose length is too short or runs past its container.
    case badLength
    /// A template or options template that cannot be used: a zero-length field, no fields,
    /// too many fields, scope fields past the field count.
    case badTemplate
    /// A template past the number kept per exporter (or over all exporters): not stored.
    case templateLimit
    /// A flow record without both addresses, or with no packets.
    case badRecord
    /// An sFlow sample with an unknown address type or no packet record to count.
    case badSample

    public var label: String {
        switch self {
        case .truncated: "truncated"
        case .badVersion: "bad_version"
        case .badLength: "bad_length"
        case .badTemplate: "bad_template"
        case .templateLimit: "template_limit"
        case .badRecord: "bad_record"
        case .badSample: "bad_sample"
        }
    }
}
