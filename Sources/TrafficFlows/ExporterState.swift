import TrafficCore

/// What a collector knows of one exporter (a router or switch, by source address): its
/// health counters, its v9/IPFIX templates, and per observation domain (v9 source id,
/// IPFIX domain, sFlow sub-agent, v5 engine) the sequence numbers and sampling it declared.
/// Used by the collector's thread only.
final class ExporterState {
    /// `nil` for the `other` entry, which holds every exporter past the table's limit:
    /// counted, but given no templates and no sequence tracking.
    let address: IPAddress?
    var datagrams: UInt64 = 0
    var records: UInt64 = 0
    var filtered: UInt64 = 0
    var errors = [UInt64](repeating: 0, count: FlowDecodeError.allCases.count)
    var sequenceGaps: UInt64 = 0
    var missingTemplate: UInt64 = 0
    var samplingRate: UInt64 = 1
    var lastSeen: Int64 = 0
    /// Templates by `templateKey(domain:id:)`.
    var templates: [UInt64: FlowTemplate] = [:]
    /// Per observation domain, by `domainKey`.
    var domains: [UInt64: DomainState] = [:]
    /// Sampling rates declared per sampler (v9 sampler id, IPFIX selector id), by
    /// `domain << 32 | sampler`.
    var samplers: [UInt64: UInt64] = [:]

    init(address: IPAddress?) {
        self.address = address
    }

    var label: String { address?.description ?? "other" }

    @inline(__always)
    func count(_ error: FlowDecodeError) {
        errors[error.rawValue] &+= 1
    }

    /// The domain's state, when it is (or can now be) tracked: at most
    /// `ExporterTable.domainsPerExporter` per exporter, none for `other`.
    @inline(__always)
    func domain(_ key: UInt64) -> DomainState? {
        if let state = domains[key] { return state }
        guard address != nil, domains.count < ExporterTable.domainsPerExporter else { return nil }
        let state = DomainState()
        domains[key] = state
        return state
    }

    static func templateKey(domain: UInt32, id: UInt16) -> UInt64 { UInt64(domain) << 16 | UInt64(id) }

    var health: FlowExporterHealth {
        FlowExporterHealth(
            exporter: label, datagrams: datagrams, records: records, filtered: filtered,
            errors: Dictionary(uniqueKeysWithValues: FlowDecodeError.allCases.map { ($0.label, errors[$0.rawValue]) }),
            sequenceGaps: sequenceGaps, missingTemplate: missingTemplate, templates: templates.count, samplingRate: samplingRate,
            lastSeen: lastSeen)
    }
}

/// One observation domain's sequence numbers, sampling rate and system start (IPFIX
/// `systemInitTimeMilliseconds`, for records timed by `flowEndSysUpTime`).
final class DomainState {
    var sequence = SequenceTracker()
    var samplingRate: UInt64?
    var systemInitMilliseconds: Int64?
}

/// The exporters a collector tracks, bounded: at most `limit` by address, the rest counted
/// together as `other`; at most `templatesPerExporter` templates each and `totalTemplates`
/// over all, so a flood of exporters or templates cannot grow memory without end.
///
/// ```swift
/// let table = ExporterTable(limit: 1024)
/// let exporter = table.exporter(IPAddress("192.0.2.1")!)
/// ```
public final class ExporterTable {
    public static let templatesPerExporter = 512
    public static let totalTemplates = 16_384
    static let domainsPerExporter = 64
    static let samplersPerExporter = 256

    public let limit: Int
    private(set) var byAddress: [IPAddress: ExporterState] = [:]
    /// In the order first seen.
    private(set) var order: [ExporterState] = []
    let other = ExporterState(address: nil)
    /// Templates held over every exporter.
    private(set) var templateCount = 0

    public init(limit: Int = 1024) {
        self.limit = max(0, limit)
    }

    /// The exporter's state: its own while fewer than `limit` are tracked, else `other`.
    @inline(__always)
    func exporter(_ address: IPAddress) -> ExporterState {
        if let state = byAddress[address] { return state }
        guard byAddress.count < limit else { return other }
        let state = ExporterState(address: address)
        byAddress[address] = state
        order.append(state)
        return state
    }

    /// Stores (or replaces: a template refresh) a template; `false`, counting the error, when
    /// the exporter or the collector holds as many as it may.
    func store(_ template: FlowTemplate, key: UInt64, for exporter: ExporterState) -> Bool {
        guard exporter.address != nil else { return false }
        if exporter.templates[key] != nil {
            exporter.templates[key] = template
            return true
        }
        guard exporter.templates.count < Self.templatesPerExporter, templateCount < Self.totalTemplates else {
            exporter.count(.templateLimit)
            return false
        }
        exporter.templates[key] = template
        templateCount += 1
        return true
    }

    /// Withdraws one template (IPFIX), or with `id` nil every template of `domain` of the kind.
    func withdraw(domain: UInt32, id: UInt16?, options: Bool, for exporter: ExporterState) {
        if let id {
            if exporter.templates.removeValue(forKey: ExporterState.templateKey(domain: domain, id: id)) != nil { templateCount -= 1 }
            return
        }
        let keys = exporter.templates.filter { $0.key >> 16 == UInt64(domain) && $0.value.isOptions == options }.map(\.key)
        for key in keys { exporter.templates.removeValue(forKey: key) }
        templateCount -= keys.count
    }

    /// Every exporter's figures, in the order first seen, `other` last when it holds any.
    public var health: [FlowExporterHealth] {
        order.map(\.health) + (other.datagrams > 0 ? [other.health] : [])
    }
}

/// One exporter's figures since the collector started.
public struct FlowExporterHealth: Sendable, Equatable, Codable {
    /// Its address, or `other` for the exporters past the collector's limit.
    public var exporter: String
    public var datagrams: UInt64
    /// Flow records (or sFlow samples) counted into windows.
    public var records: UInt64
    /// Records left out by `--flow-direction`.
    public var filtered: UInt64
    /// Decode errors by `FlowDecodeError.label`.
    public var errors: [String: UInt64]
    public var sequenceGaps: UInt64
    /// Data sets that arrived before their template: dropped, not guessed.
    public var missingTemplate: UInt64
    public var templates: Int
    /// The sampling rate of the last record (1: unsampled).
    public var samplingRate: UInt64
    /// When its last datagram arrived, nanoseconds since the Unix epoch.
    public var lastSeen: Int64

    enum CodingKeys: String, CodingKey {
        case exporter, datagrams, records, filtered, errors, templates
        case sequenceGaps = "sequence_gaps", missingTemplate = "missing_template", samplingRate = "sampling_rate"
        case lastSeen = "last_seen_ns"
    }
}
