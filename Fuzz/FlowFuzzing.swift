// What the flow decoders' libFuzzer harnesses (NetFlowFuzzer.swift, SFlowFuzzer.swift)
// share, compiled with each (see scripts/fuzz-flows): the exporter table, a shard with
// small caps, and one input's run.
//
// Input: byte 0 picks the exporter (one of six; the table keeps four and counts the rest as
// `other`), the rest is one datagram, copied to a buffer of exactly its size so a read one
// byte past it is caught. Every record is checked by the harness and counted; every 64
// inputs the shard's windows are closed and their records must be conserved.

/// One decoder's fuzzing state, kept across inputs (a template from one input meets the
/// data of another).
final class FlowFuzzing {
    let exporters = ExporterTable(limit: 4)
    let configuration = WindowAggregator.Configuration(
        windowLength: 1_000_000_000,
        localNetworks: LocalNetworks([NetworkPrefix(address: IPAddress(ipv4: 0x0A00_0000), length: 8)]),
        maxClients: 64, maxFlows: 128, top: 8)
    let shard: WindowShard
    /// The windows' source label (`netflow`, `sflow`).
    let source: String
    /// The time every datagram is received at.
    let now: Int64 = 1_700_000_000_000_000_000
    var inputs = 0

    init(source: String) {
        self.source = source
        shard = WindowShard(configuration: configuration)
    }

    /// Runs one input: `decode` decodes the datagram from the exporter, handing each record
    /// to the function it is given; each record must pass `check` and is counted.
    func run(
        _ data: UnsafePointer<UInt8>, _ size: Int,
        decode: (UnsafeRawBufferPointer, IPAddress, (inout FlowRecord) -> Void) -> Void,
        check: @escaping (FlowRecord) -> Bool
    ) {
        guard size >= 1 else { return }
        let exporter = IPAddress(ipv4: 0xC000_0200 | UInt32(data[0] % 6))
        let datagram = UnsafeMutableRawBufferPointer.allocate(byteCount: size - 1, alignment: 1)
        defer { datagram.deallocate() }
        if size > 1 { datagram.copyMemory(from: UnsafeRawBufferPointer(start: data + 1, count: size - 1)) }
        decode(UnsafeRawBufferPointer(datagram), exporter) { record in
            precondition(check(record), "a record the decoder should not have emitted")
            shard.countFlow(
                record.packet, packets: record.scaledPackets, bytes: record.scaledBytes, timestamp: record.end,
                sampled: record.samplingRate > 1) { now }
        }
        inputs += 1
        guard inputs % 64 == 0 else { return }
        for (start, tables) in shard.take(before: .max) {
            var facts = WindowFacts(start: start, end: start + configuration.windowLength, partial: false)
            facts.sources = [source]
            let closed = ClosedWindow(facts: facts, tables: [(tables, shard)], configuration: configuration)
            precondition(closed.record().isConserved, "a window record does not conserve packets and bytes")
            closed.recycle()
        }
    }
}
