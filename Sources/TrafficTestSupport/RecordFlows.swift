import TrafficCore

extension SyntheticTraffic {
    /// What `records` counted per (client, direction, service), keyed as `Truth.flows`
    /// (so the two compare directly).
    public static func flows(in records: [WindowRecord]) -> [FlowKey: Counts] {
        flows(in: records, side: \.clients)
    }

    /// What `records` counted per (server, direction, service), keyed as `Truth.serverFlows`.
    public static func serverFlows(in records: [WindowRecord]) -> [FlowKey: Counts] {
        flows(in: records, side: \.servers)
    }

    static func flows(in records: [WindowRecord], side: KeyPath<WindowRecord, [PartyRecord]>) -> [FlowKey: Counts] {
        var result: [FlowKey: Counts] = [:]
        for r in records {
            for c in r[keyPath: side] {
                for s in c.services {
                    result[.init(client: c.ip.description, direction: s.direction.label, service: s.service.label), default: .zero]
                        .add(packets: s.packets, bytes: s.bytes)
                }
            }
        }
        return result
    }
}
