// libFuzzer harness for the capture-file record reader (`MappedRecords`), differential
// against libpcap: compiled together with TrafficCapture's sources (see
// scripts/fuzz-mapped-records), so it reaches the reader's internals.
//
// Input: the bytes of a capture file. They are read twice:
// - by libpcap alone, from a private copy through a memory stream (`pcap_next_ex` to the
//   end or the first error): the reference;
// - the way trafficmon reads a file: `PacketSource.openFile` (memory map, libpcap opens
//   it), the plain records walked in the map by `MappedRecords`, handed back to libpcap at
//   the first record that is not plain; and, on a second handle, through `PacketPump`.
// Both must give the same records (time, captured and wire length, frame bytes), the same
// count and the same failure (none, or libpcap's same message), or both refuse the file
// with the same reason. Any difference traps (a crash for libFuzzer).

import CPcap
import Foundation
import TrafficCore

/// One record as read.
struct FuzzRecord: Equatable {
    var timestamp: Int64
    var captured: Int
    var wire: Int
    var bytes: [UInt8]
}

/// How a read ended.
enum FuzzEnd: Equatable {
    case endOfFile
    case failed(String)
}

nonisolated(unsafe) let fuzzPath = "/dev/shm/trafficmon-fuzz-\(getpid()).pcap"

/// libpcap alone: open (nil with libpcap's message when it refuses) and read to the end.
func referenceRead(_ data: UnsafeRawBufferPointer) -> (records: [FuzzRecord], end: FuzzEnd)? {
    let copy = UnsafeMutableRawPointer.allocate(byteCount: max(1, data.count), alignment: 16)
    defer { copy.deallocate() }
    copy.copyMemory(from: data.baseAddress!, byteCount: data.count)
    guard let stream = fmemopen(copy, data.count, "rb") else { return nil }
    var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
    guard let handle = pcap_fopen_offline_with_tstamp_precision(stream, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errbuf) else {
        fclose(stream)
        return nil
    }
    defer { pcap_close(handle) }
    guard LinkType(rawValue: pcap_datalink(handle)).isSupported else { return nil }
    var records: [FuzzRecord] = []
    var header: UnsafeMutablePointer<pcap_pkthdr>?
    var bytes: UnsafePointer<UInt8>?
    while true {
        let status = pcap_next_ex(handle, &header, &bytes)
        if status == 1, let header, let bytes {
            records.append(libpcapRecord(header, bytes))
        } else if status == PCAP_ERROR_BREAK {
            return (records, .endOfFile)
        } else {
            return (records, .failed(PacketSource.clean(String(cString: pcap_geterr(handle)))))
        }
    }
}

func libpcapRecord(_ header: UnsafePointer<pcap_pkthdr>, _ bytes: UnsafePointer<UInt8>) -> FuzzRecord {
    let h = header.pointee
    return FuzzRecord(
        timestamp: Int64(h.ts.tv_sec) &* 1_000_000_000 &+ Int64(h.ts.tv_usec), captured: Int(h.caplen), wire: Int(h.len),
        bytes: Array(UnsafeBufferPointer(start: bytes, count: Int(h.caplen))))
}

/// trafficmon's way: the map's plain records, then libpcap from where they stop.
func mappedRead(_ source: PacketSource) -> (records: [FuzzRecord], end: FuzzEnd) {
    var records: [FuzzRecord] = []
    if var walk = MappedRecords(source: source) {
        while let record = walk.next() {
            let frame = record.frame.assumingMemoryBound(to: UInt8.self)
            records.append(FuzzRecord(
                timestamp: record.timestamp, captured: record.capturedLength, wire: record.wireLength,
                bytes: Array(UnsafeBufferPointer(start: frame, count: record.capturedLength))))
        }
        precondition(!walk.shrank, "the file did not change, but the reader says it shrank")
        precondition(walk.handBack(), "libpcap's stream would not move to the next record")
    }
    var header: UnsafeMutablePointer<pcap_pkthdr>?
    var bytes: UnsafePointer<UInt8>?
    while true {
        let status = pcap_next_ex(source.handle, &header, &bytes)
        if status == 1, let header, let bytes {
            records.append(libpcapRecord(header, bytes))
        } else if status == PCAP_ERROR_BREAK {
            return (records, .endOfFile)
        } else {
            return (records, .failed(source.lastError))
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    guard size > 0, FileManager.default.createFile(atPath: fuzzPath, contents: Data(input)) else { return 0 }
    defer { unlink(fuzzPath) }
    let reference = referenceRead(input)

    // The reader under test.
    let source: PacketSource
    do {
        source = try PacketSource.openFile(fuzzPath)
    } catch {
        precondition(reference == nil, "trafficmon refused a file libpcap reads: \(error)")
        return 0
    }
    guard let reference else {
        preconditionFailure("trafficmon opened a file libpcap refuses (or whose link type it does not decode)")
    }
    let mapped = mappedRead(source)
    precondition(mapped.records.count == reference.records.count,
                 "\(mapped.records.count) records read through the map, \(reference.records.count) by libpcap")
    for (i, (a, b)) in zip(mapped.records, reference.records).enumerated() {
        precondition(a == b, "record \(i) differs: mapped \(a.timestamp) \(a.captured)/\(a.wire), libpcap \(b.timestamp) \(b.captured)/\(b.wire)")
    }
    precondition(mapped.end == reference.end, "the reads end differently: mapped \(mapped.end), libpcap \(reference.end)")

    // The same through the pump (its batches, the hand-back, its errors).
    guard let second = try? PacketSource.openFile(fuzzPath) else { preconditionFailure("the second open failed") }
    let aggregator = WindowAggregator(configuration: .init(windowLength: 1_000_000_000, maxClients: 64, top: 8)) { (closed: ClosedWindow) in
        closed.recycle()
    }
    let pump: PacketPump
    do {
        pump = try PacketPump(source: second, aggregator: aggregator)
    } catch {
        preconditionFailure("no pump for an open source: \(error)")
    }
    var failure: CaptureError?
    do {
        try pump.drain()
    } catch {
        failure = error
    }
    aggregator.finish()
    precondition(pump.framesRead == UInt64(reference.records.count), "the pump read \(pump.framesRead) frames, libpcap \(reference.records.count)")
    precondition(pump.bytesRead == reference.records.reduce(0) { $0 + UInt64($1.wire) }, "the pump's wire bytes differ from libpcap's")
    switch (failure, reference.end) {
    case (nil, .endOfFile): break
    case (.readFailed(_, let reason)?, .failed(let message)):
        precondition(reason == message, "the pump failed with '\(reason)', libpcap with '\(message)'")
    default:
        preconditionFailure("the pump ended with \(String(describing: failure)), libpcap with \(reference.end)")
    }
    return 0
}
