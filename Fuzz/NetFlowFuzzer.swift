// libFuzzer harness for the NetFlow v5, v9 and IPFIX decoder and the counting of what it
// decodes, compiled together with TrafficCore's sources, the decoders and FlowFuzzing.swift
// (see scripts/fuzz-flows; FlowFuzzing.swift says what an input is).
//
// Every input must decode without crashing or reading out of bounds (AddressSanitizer
// checks the reads), every record must be countable (packets, a sampling rate of at least
// 1), memory must stay bounded (the template caps; libFuzzer's RSS limit), and the window
// records conserved.

nonisolated(unsafe) let fuzzing = FlowFuzzing(source: "netflow")
nonisolated(unsafe) let decoder = NetFlowDecoder(exporters: fuzzing.exporters)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzing.run(data, size) { datagram, exporter, emit in
        decoder.decode(datagram, from: exporter, at: fuzzing.now, emit: emit)
    } check: { record in
        record.packets > 0 && record.samplingRate >= 1 && record.packet.kind == .ip
    }
    precondition(fuzzing.exporters.templateCount <= ExporterTable.totalTemplates)
    return 0
}
