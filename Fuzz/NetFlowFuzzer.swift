// libFuzzer harness for the NetFlow v5, v9 and IPFIX decoder and the counting of what it
// decodes, compiled together with TrafficCore's sources and the decoders (see
// scripts/fuzz-flows).
//
// Input: byte 0 picks the exporter (one of six, the table keeps four and counts the rest
// as `other`), the rest is one datagram. The decoder keeps its state across inputs, so a
// template from one input meets the data of another. Every input must decode without
// crashing or reading out of bounds (AddressSanitizer checks the reads), every record must
// be countable (packets, a sampling rate of at least 1), memory must stay bounded (the
// template caps; libFuzzer's RSS limit), and the window records conserved.

nonisolated(unsafe) let exporters = ExporterTable(limit: 4)
nonisolated(unsafe) let decoder = NetFlowDecoder(exporters: exporters)
nonisolated(unsafe) let configuration = WindowAggregator.Configuration(
    windowLength: 1_000_000_000,
    localNetworks: LocalNetworks([NetworkPrefix(address: IPAddress(ipv4: 0x0A00_0000), length: 8)]),
    maxClients: 64, maxFlows: 128, top: 8)
nonisolated(unsafe) let shard = WindowShard(configuration: configuration)
nonisolated(unsafe) var inputs = 0
let now: Int64 = 1_700_000_000_000_000_000

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let exporter = IPAddress(ipv4: 0xC000_0200 | UInt32(data[0] % 6))
    // An exactly-sized copy, so reading one byte past the datagram is caught.
    let datagram = UnsafeMutableRawBufferPointer.allocate(byteCount: size - 1, alignment: 1)
    defer { datagram.deallocate() }
    if size > 1 { datagram.copyMemory(from: UnsafeRawBufferPointer(start: data + 1, count: size - 1)) }
    decoder.decode(UnsafeRawBufferPointer(datagram), from: exporter, at: now) { record in
        precondition(record.packets > 0 && record.samplingRate >= 1 && record.packet.kind == .ip)
        shard.countFlow(
            record.packet, packets: record.scaledPackets, bytes: record.scaledBytes, timestamp: record.end,
            sampled: record.samplingRate > 1) { now }
    }
    precondition(exporters.templateCount <= ExporterTable.totalTemplates)
    inputs += 1
    if inputs % 64 == 0 {
        for (start, tables) in shard.take(before: .max) {
            var facts = WindowFacts(start: start, end: start + configuration.windowLength, partial: false)
            facts.sources = ["netflow"]
            let closed = ClosedWindow(facts: facts, tables: [(tables, shard)], configuration: configuration)
            precondition(closed.record().isConserved, "a window record does not conserve packets and bytes")
            closed.recycle()
        }
    }
    return 0
}
