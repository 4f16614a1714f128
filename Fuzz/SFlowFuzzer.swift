// libFuzzer harness for the sFlow v5 decoder (raw packet headers go through the packet
// decoder) and the counting of its samples, compiled together with TrafficCore's sources,
// the decoders and FlowFuzzing.swift (see scripts/fuzz-flows; FlowFuzzing.swift says what an input is).
//
// Every input must decode without crashing or reading out of bounds, every sample must be
// countable (one packet standing for its sampling rate, timed on arrival), and the window
// records conserved.

nonisolated(unsafe) let fuzzing = FlowFuzzing(source: "sflow")
nonisolated(unsafe) let decoder = SFlowDecoder(exporters: fuzzing.exporters)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzing.run(data, size) { datagram, exporter, emit in
        decoder.decode(datagram, from: exporter, at: fuzzing.now, emit: emit)
    } check: { record in
        record.packets == 1 && record.samplingRate >= 1 && record.end == fuzzing.now
    }
    return 0
}
