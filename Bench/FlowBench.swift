// Decoding speed of the flow decoders, records per second on one core, for scripts/bench-flows
// (compiled with TrafficCore's sources, the decoders and the datagram builders as one module).
//
// Datagrams as exporters send them: IPFIX with 40 IPv4 records of 33 bytes per message
// (1,336 bytes, the template sent once before), sFlow v5 with 7 flow samples of a 128-byte
// raw Ethernet header each (pmacctd's and most switches' layout). Each datagram's sequence
// number is advanced as an exporter's would be, so sequence tracking runs as in service.
// Three measures per format, from the same run: decoding alone, decoding and counting into a
// window shard (what the collector's thread does), and a baseline that only reads every byte
// of the same datagrams, for a ratio that does not depend on the machine.
//
//   FlowBench SECONDS   (per measure; prints one line per measure)

import Foundation

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let seconds = Double(CommandLine.arguments.dropFirst().first ?? "") ?? 3
let now: Int64 = 1_700_000_100_000_000_000
let exporter = IPAddress(ipv4: 0xC000_0201)
let configuration = WindowAggregator.Configuration(
    windowLength: 1_000_000_000,
    localNetworks: LocalNetworks([NetworkPrefix(address: IPAddress(ipv4: 0x0A00_0000), length: 29)]),
    maxClients: 100_000, maxFlows: 200_000, top: 50)

struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

typealias F = FlowDatagrams.Field
typealias E = FlowDatagrams.Element

// IPFIX: source, destination, ports, protocol, octets, packets, flowEndMilliseconds.
let ipfixFields = [
    F(E.sourceIPv4, 4), F(E.destinationIPv4, 4), F(E.sourcePort, 2), F(E.destinationPort, 2), F(E.proto, 1),
    F(E.octets, 8), F(E.packets, 4), F(E.flowEndMilliseconds, 8),
]
let ipfixPerMessage = 40
func ipfixMessages(_ count: Int) -> [[UInt8]] {
    var rng = SplitMix64(seed: 7)
    return (0..<count).map { _ in
        var body = FlowDatagrams.Bytes()
        for _ in 0..<ipfixPerMessage {
            let client = 0xC633_6400 | UInt32(truncatingIfNeeded: rng.next() % 4000)
            let server = 0x0A00_0001 | UInt32(truncatingIfNeeded: rng.next() % 4)
            let inbound = rng.next() % 2 == 0
            body.u32(inbound ? client : server); body.u32(inbound ? server : client)
            body.u16(inbound ? 40000 : 443); body.u16(inbound ? 443 : 40000); body.u8(6)
            body.u64(1500 + rng.next() % 100_000); body.u32(1 + UInt32(rng.next() % 80)); body.u64(1_700_000_100_000)
        }
        return FlowDatagrams.ipfix(exportTime: 1_700_000_100, sequence: 0, domain: 1, sets: [FlowDatagrams.set(id: 256, body.bytes)])
    }
}

let sflowPerDatagram = 7
func sflowDatagrams(_ count: Int) -> [[UInt8]] {
    var rng = SplitMix64(seed: 9)
    return (0..<count).map { _ in
        let samples = (0..<sflowPerDatagram).map { _ -> [UInt8] in
            let client = 0xC633_6400 | UInt32(truncatingIfNeeded: rng.next() % 4000)
            let server = 0x0A00_0001 | UInt32(truncatingIfNeeded: rng.next() % 4)
            let inbound = rng.next() % 2 == 0
            var frame = FlowDatagrams.Bytes()
            frame.append([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0])
            let total = 40 + Int(rng.next() % 1400)
            frame.append([0x45, 0]); frame.u16(UInt16(total)); frame.append([0, 0, 0x40, 0, 64, 6, 0, 0])
            frame.u32(inbound ? client : server); frame.u32(inbound ? server : client)
            frame.u16(inbound ? 40000 : 443); frame.u16(inbound ? 443 : 40000)
            frame.u32(1); frame.u32(0); frame.append([0x50, 0x18]); frame.u16(65535); frame.u32(0)
            while frame.bytes.count < 128 { frame.u8(0) }
            return FlowDatagrams.sflowFlowSample(
                rate: 1, records: [FlowDatagrams.sflowRawHeader(Array(frame.bytes.prefix(128)), frameLength: UInt32(total + 18), stripped: 4)])
        }
        return FlowDatagrams.sflow(sequence: 0, samples: samples)
    }
}

/// Runs `body` over the datagrams (each with its sequence field advanced first) for about
/// `seconds`; returns records (or bytes, for the baseline) per second.
/// Allocations so far, when Bench/malloc-count.c is preloaded (nil otherwise).
let mallocCount: (@convention(c) () -> UInt)? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "trafficmon_malloc_count")
    .map { unsafeBitCast($0, to: (@convention(c) () -> UInt).self) }

/// Allocations while `body` decodes (and counts) the datagrams once more, warm.
func allocationsPerRecord(_ datagrams: inout [[UInt8]], sequenceAt offset: Int, step: UInt32, _ body: (UnsafeRawBufferPointer) -> Int) -> String {
    guard let mallocCount else { return "n/a (run through scripts/bench-flows)" }
    var records = 0
    var before: UInt = 0
    // A first pass warms up (runtime metadata, lazy globals), the second is counted.
    for pass in 0..<2 {
        records = 0
        before = mallocCount()
        for i in datagrams.indices {
            sequence &+= step
            datagrams[i].withUnsafeMutableBytes { raw in
                raw.storeBytes(of: (sequence &- step).bigEndian, toByteOffset: offset, as: UInt32.self)
                records += body(UnsafeRawBufferPointer(raw))
            }
        }
        _ = pass
    }
    return "\(mallocCount() - before) in \(records) records"
}

/// The next sequence number, kept across measures so the exporter's numbering never jumps.
var sequence: UInt32 = 0
func measure(_ datagrams: inout [[UInt8]], sequenceAt offset: Int, step: UInt32, _ body: (UnsafeRawBufferPointer) -> Int) -> Double {
    var done = 0
    let start = monotonicSeconds()
    var elapsed = 0.0
    repeat {
        for i in datagrams.indices {
            sequence &+= step
            datagrams[i].withUnsafeMutableBytes { raw in
                raw.storeBytes(of: (sequence &- step).bigEndian, toByteOffset: offset, as: UInt32.self)
                done += body(UnsafeRawBufferPointer(raw))
            }
        }
        elapsed = monotonicSeconds() - start
    } while elapsed < seconds
    return Double(done) / elapsed
}

var checksum: UInt64 = 0
func baseline(_ raw: UnsafeRawBufferPointer) -> Int {
    var sum: UInt64 = 0
    for byte in raw { sum &+= UInt64(byte) }
    checksum &+= sum
    return raw.count
}

// IPFIX.
do {
    let table = ExporterTable(limit: 16)
    let decoder = NetFlowDecoder(exporters: table)
    let template = FlowDatagrams.ipfix(exportTime: 1_700_000_100, sequence: 0, domain: 1, sets: [FlowDatagrams.ipfixTemplates([(256, ipfixFields)])])
    template.withUnsafeBytes { decoder.decode($0, from: exporter, at: now) { _ in } }
    sequence = 0
    var messages = ipfixMessages(256)
    let shard = WindowShard(configuration: configuration)
    let decode = measure(&messages, sequenceAt: 8, step: UInt32(ipfixPerMessage)) { raw in
        var n = 0
        decoder.decode(raw, from: exporter, at: now) { record in n += Int(record.packets > 0 ? 1 : 0) }
        return n
    }
    let count = measure(&messages, sequenceAt: 8, step: UInt32(ipfixPerMessage)) { raw in
        var n = 0
        decoder.decode(raw, from: exporter, at: now) { record in
            shard.countFlow(record.packet, packets: record.scaledPackets, bytes: record.scaledBytes, timestamp: record.end,
                            sampled: record.samplingRate > 1) { now }
            n += 1
        }
        return n
    }
    let ipfixDecodeAllocations = allocationsPerRecord(&messages, sequenceAt: 8, step: UInt32(ipfixPerMessage)) { raw in
        var n = 0
        decoder.decode(raw, from: exporter, at: now) { _ in n += 1 }
        return n
    }
    let ipfixAllocations = allocationsPerRecord(&messages, sequenceAt: 8, step: UInt32(ipfixPerMessage)) { raw in
        var n = 0
        decoder.decode(raw, from: exporter, at: now) { record in
            shard.countFlow(record.packet, packets: record.scaledPackets, bytes: record.scaledBytes, timestamp: record.end,
                            sampled: record.samplingRate > 1) { now }
            n += 1
        }
        return n
    }
    let bytesPerRecord = Double(messages[0].count) / Double(ipfixPerMessage)
    let read = measure(&messages, sequenceAt: 8, step: UInt32(ipfixPerMessage), baseline) / bytesPerRecord
    let h = table.health.first!
    precondition(h.sequenceGaps == 0 && h.errors.values.allSatisfy { $0 == 0 }, "IPFIX decode errors in the bench: \(h)")
    print(String(format: "ipfix  decode %12.0f records/s  decode+count %12.0f records/s  byte-read baseline %12.0f records/s  decode/baseline %.3f",
                 decode, count, read, decode / read) + "  allocations: decode \(ipfixDecodeAllocations), decode+count \(ipfixAllocations)")
}

// sFlow.
do {
    let table = ExporterTable(limit: 16)
    let decoder = SFlowDecoder(exporters: table)
    sequence = 0
    var datagrams = sflowDatagrams(256)
    let shard = WindowShard(configuration: configuration)
    let decode = measure(&datagrams, sequenceAt: 16, step: 1) { raw in
        var n = 0
        decoder.decode(raw, from: exporter, at: now) { record in n += Int(record.packets > 0 ? 1 : 0) }
        return n
    }
    let count = measure(&datagrams, sequenceAt: 16, step: 1) { raw in
        var n = 0
        decoder.decode(raw, from: exporter, at: now) { record in
            shard.countFlow(record.packet, packets: record.scaledPackets, bytes: record.scaledBytes, timestamp: record.end,
                            sampled: record.samplingRate > 1) { now }
            n += 1
        }
        return n
    }
    let sflowDecodeAllocations = allocationsPerRecord(&datagrams, sequenceAt: 16, step: 1) { raw in
        var n = 0
        decoder.decode(raw, from: exporter, at: now) { _ in n += 1 }
        return n
    }
    let sflowAllocations = allocationsPerRecord(&datagrams, sequenceAt: 16, step: 1) { raw in
        var n = 0
        decoder.decode(raw, from: exporter, at: now) { record in
            shard.countFlow(record.packet, packets: record.scaledPackets, bytes: record.scaledBytes, timestamp: record.end,
                            sampled: record.samplingRate > 1) { now }
            n += 1
        }
        return n
    }
    let bytesPerRecord = Double(datagrams[0].count) / Double(sflowPerDatagram)
    let read = measure(&datagrams, sequenceAt: 16, step: 1, baseline) / bytesPerRecord
    let h = table.health.first!
    precondition(h.errors.values.allSatisfy { $0 == 0 }, "sFlow decode errors in the bench: \(h)")
    print(String(format: "sflow  decode %12.0f records/s  decode+count %12.0f records/s  byte-read baseline %12.0f records/s  decode/baseline %.3f",
                 decode, count, read, decode / read) + "  allocations: decode \(sflowDecodeAllocations), decode+count \(sflowAllocations)")
}
if checksum == 42 { print("") }
