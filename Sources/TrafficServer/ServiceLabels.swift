import Foundation
import Prometheus
import TrafficCore

/// Which services get a label of their own in the cumulative service counters
/// (`trafficmon_service_packets_total` / `_bytes_total`): the services that carry the most
/// traffic, so that a port scan (thousands of services of one packet each) cannot take the
/// labels from real ones.
///
/// The rule, applied to each closed window in order:
/// - Each labelled service has a *score*: the most bytes it carried in one window, halved
///   for every `halfLife` of window time since (a decayed peak).
/// - The window's services are ranked by bytes (both directions together); only its top
///   `capacity` can win a label. A listed one that has a label raises its score to this
///   window's bytes if that is more.
/// - One without a label takes a free label if there is one (at most `capacity`); else it
///   takes the label of the lowest-scored service if it carried more than `margin` times
///   that score in this window. The evicted service's series go away (counted under
///   `other` from then on; a counter reset if it wins a label again).
///
/// So a scan fills free labels at most: it never displaces a service that carried twice a
/// scan port's bytes, and a busy service wins a label in the first window it is busy in.
/// The margin keeps two services of about the same traffic from taking turns.
///
/// ```swift
/// var labels = ServiceLabels(capacity: 50)
/// let evicted = labels.admit(record)
/// let label = labels.label(for: service)   // its own, or "other"
/// ```
struct ServiceLabels {
    let capacity: Int
    /// Window time over which a score halves.
    let halfLife: Int64
    /// How many times a service's window bytes must exceed the lowest score to take its label.
    let margin: Double
    /// Labelled services and their scores.
    private(set) var scores: [String: Double] = [:]
    /// The end of the last window admitted (nanoseconds).
    private var clock: Int64?

    static let other = "other"

    init(capacity: Int, halfLife: Int64 = 600_000_000_000, margin: Double = 2) {
        self.capacity = max(1, capacity)
        self.halfLife = max(1, halfLife)
        self.margin = margin
    }

    /// Takes a closed window into account (its `services` sorted by bytes, descending, as a
    /// record holds them); returns the labels that lost their place.
    mutating func admit(_ record: WindowRecord) -> [String] {
        decay(to: record.end)
        // Bytes per service, both directions together, in the window's order.
        var order: [String] = []
        var bytes: [String: UInt64] = [:]
        for entry in record.services where entry.service != .other {
            let label = entry.service.label
            if bytes[label] == nil { order.append(label) }
            bytes[label, default: 0] &+= entry.bytes
        }
        let ranked = order.enumerated()
            .sorted { a, b in
                let (x, y) = (bytes[a.element] ?? 0, bytes[b.element] ?? 0)
                return x != y ? x > y : a.offset < b.offset
            }
            .prefix(capacity)
            .map(\.element)
        var evicted: [String] = []
        for label in ranked {
            let carried = Double(bytes[label] ?? 0)
            if let score = scores[label] {
                scores[label] = max(score, carried)
            } else if scores.count < capacity {
                scores[label] = carried
            } else if let lowest = scores.min(by: { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }),
                      carried > margin * lowest.value {
                scores[lowest.key] = nil
                scores[label] = carried
                evicted.append(lowest.key)
            }
        }
        return evicted
    }

    /// The label `service`'s traffic counts under now.
    func label(for service: Service) -> String {
        guard service != .other else { return Self.other }
        let label = service.label
        return scores[label] != nil ? label : Self.other
    }

    private mutating func decay(to time: Int64) {
        defer { clock = max(clock ?? time, time) }
        guard let clock, time > clock else { return }
        let factor = pow(0.5, Double(time - clock) / Double(halfLife))
        for key in scores.keys { scores[key]? *= factor }
    }
}

/// The cumulative service counters, labelled by `ServiceLabels`. Not thread-safe: used under
/// `TrafficMetrics`'s lock only.
final class ServiceCounters: @unchecked Sendable {
    let registry: PrometheusCollectorRegistry
    private(set) var labels: ServiceLabels
    private var counters: [Key: (packets: Counter, bytes: Counter)] = [:]

    struct Key: Hashable {
        var label: String
        var direction: Direction
    }

    init(registry: PrometheusCollectorRegistry, capacity: Int) {
        self.registry = registry
        labels = ServiceLabels(capacity: capacity)
    }

    /// Adds a closed window's services (after admitting the window's top to the labels).
    func record(_ record: WindowRecord) {
        for label in labels.admit(record) {
            for direction in Direction.allCases {
                guard let pair = counters.removeValue(forKey: Key(label: label, direction: direction)) else { continue }
                registry.unregisterCounter(pair.packets)
                registry.unregisterCounter(pair.bytes)
            }
        }
        for s in record.services {
            let key = Key(label: labels.label(for: s.service), direction: s.direction)
            let pair = counters[key] ?? (
                registry.makeCounter(descriptor: Names.servicePackets, labels: [("service", key.label), ("direction", s.direction.label)]),
                registry.makeCounter(descriptor: Names.serviceBytes, labels: [("service", key.label), ("direction", s.direction.label)]))
            counters[key] = pair
            pair.packets.increment(by: Int64(clamping: s.packets))
            pair.bytes.increment(by: Int64(clamping: s.bytes))
        }
    }
}
