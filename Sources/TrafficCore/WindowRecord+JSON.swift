/// A small JSON writer for the window record: numbers and ASCII-safe strings
/// straight into a byte buffer, keys in DESIGN.md's order, added keys after them
/// (`services`, `servers`, `other_servers`, then `networks`, `countries`, `asns` where
/// configured, then `tcp`, `sizes`, `dns`; `local`, then `network`, `country`, `asn`,
/// `as_org` where configured, in each party).
extension WindowRecord {
    /// The record as one line of JSON (no trailing newline).
    ///
    /// ```swift
    /// FileHandle.standardOutput.write(Data(record.jsonBytes() + [0x0A]))
    /// ```
    public func jsonBytes() -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(640 + (clients.count + servers.count) * 160 + services.count * 64)
        appendJSON(to: &out)
        return out
    }

    /// The record as a JSON string.
    public var jsonString: String { String(decoding: jsonBytes(), as: UTF8.self) }

    /// Appends the record as one line of JSON to `out`.
    public func appendJSON(to buffer: inout [UInt8]) {
        var out = RawByteBuffer(capacity: 640 + (clients.count + servers.count) * 320 + services.count * 96)
        defer { out.deallocate() }
        render(into: &out)
        buffer.append(bytes: out.bytes)
    }

    /// Renders the record as one line of JSON (no newline) at the end of `buffer`. With a
    /// `drain`, whenever `buffer` holds `drainPast` bytes or more before a party is
    /// written, they are handed to it and `buffer` is emptied: a record of 20,000 parties
    /// (7 MB) then passes through a buffer that stays in the cache.
    func render(into buffer: inout RawByteBuffer, drainPast: Int = .max, drain: ((UnsafeRawBufferPointer) -> Void)? = nil) {
        var w = JSONWriter(out: buffer, drainPast: drainPast, drain: drain)
        defer { buffer = w.out }
        w.raw("{\"start\":\"")
        Timestamp.appendRFC3339(start, to: &w.out)
        w.raw("\",\"end\":\"")
        Timestamp.appendRFC3339(end, to: &w.out)
        w.raw("\",\"partial\":")
        w.raw(partial ? "true" : "false")
        w.raw(",\"packets\":")
        w.number(packets)
        w.raw(",\"bytes\":")
        w.number(bytes)
        w.raw(",\"in\":")
        w.counts(self.in)
        w.raw(",\"out\":")
        w.counts(out)
        w.raw(",\"clients\":")
        w.parties(clients)
        w.raw(",\"other\":{\"packets\":")
        w.number(other.packets)
        w.raw(",\"bytes\":")
        w.number(other.bytes)
        w.raw(",\"clients\":")
        w.number(other.clients)
        w.raw(",\"in\":")
        w.counts(other.in)
        w.raw(",\"out\":")
        w.counts(other.out)
        w.raw("},\"non_ip\":")
        w.counts(nonIP)
        w.raw(",\"malformed\":{\"packets\":")
        w.number(malformed.packets)
        w.raw(",\"bytes\":")
        w.number(malformed.bytes)
        w.raw(",\"reasons\":{")
        for (i, label) in malformed.reasons.keys.sorted().enumerated() {
            if i > 0 { w.raw(",") }
            w.string(label)
            w.raw(":")
            w.number(malformed.reasons[label] ?? 0)
        }
        w.raw("}},\"late_packets\":")
        w.number(latePackets)
        w.raw(",\"capture\":{\"received\":")
        w.number(capture.received)
        w.raw(",\"dropped\":")
        w.number(capture.dropped)
        w.raw(",\"kernel_dropped\":")
        w.number(capture.kernelDropped)
        w.raw(",\"interface_dropped\":")
        w.number(capture.interfaceDropped)
        w.raw(",\"oversized\":")
        w.number(capture.oversized)
        w.raw(",\"interfaces\":[")
        for (i, interface) in capture.interfaces.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"name\":")
            w.string(interface.name)
            w.raw(",\"received\":")
            w.number(interface.received)
            w.raw(",\"kernel_dropped\":")
            w.number(interface.kernelDropped)
            w.raw(",\"interface_dropped\":")
            w.number(interface.interfaceDropped)
            w.raw("}")
        }
        w.raw("]},\"services\":")
        services.withUnsafeBufferPointer { w.services($0) }
        w.raw(",\"servers\":")
        w.parties(servers)
        w.raw(",\"other_servers\":{\"packets\":")
        w.number(otherServers.packets)
        w.raw(",\"bytes\":")
        w.number(otherServers.bytes)
        w.raw(",\"servers\":")
        w.number(otherServers.servers)
        w.raw(",\"in\":")
        w.counts(otherServers.in)
        w.raw(",\"out\":")
        w.counts(otherServers.out)
        w.raw("}")
        w.who(self)
        w.raw(",\"tcp\":{\"in\":")
        w.tcp(protocols.tcpIn)
        w.raw(",\"out\":")
        w.tcp(protocols.tcpOut)
        w.raw(",\"syn_clients\":[")
        for (i, c) in protocols.synClients.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"ip\":\"")
            c.ip.appendText(to: &w.out)
            w.raw("\",\"syn_services\":")
            w.number(c.synServices)
            w.raw(",\"syn\":")
            w.number(c.syn)
            w.raw("}")
        }
        w.raw("]},\"sizes\":{\"in\":")
        w.numbers(protocols.sizesIn)
        w.raw(",\"out\":")
        w.numbers(protocols.sizesOut)
        w.raw("},\"dns\":{\"queries\":{")
        for (i, label) in DNSFacts.queryTypes.enumerated() {
            if i > 0 { w.raw(",") }
            w.string(label)
            w.raw(":")
            w.number(protocols.dnsQueries[i])
        }
        w.raw("},\"responses\":{")
        for (i, label) in DNSFacts.responseCodes.enumerated() {
            if i > 0 { w.raw(",") }
            w.string(label)
            w.raw(":")
            w.number(protocols.dnsResponses[i])
        }
        w.raw("},\"malformed\":")
        w.number(protocols.dnsMalformed)
        w.raw(",\"cut\":")
        w.number(protocols.dnsCut)
        w.raw("}")
        w.raw(sampled ? ",\"sampled\":true,\"sources\":[" : ",\"sampled\":false,\"sources\":[")
        for (i, source) in sources.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"name\":")
            w.string(source.name)
            w.raw(",\"in\":")
            w.counts(source.in)
            w.raw(",\"out\":")
            w.counts(source.out)
            w.raw("}")
        }
        w.raw("]}")
    }
}

/// Appends JSON fragments to a raw byte buffer.
struct JSONWriter {
    var out: RawByteBuffer
    /// Where `out` is handed on and emptied between parties (`WindowRecord.render`).
    var drainPast: Int = .max
    var drain: ((UnsafeRawBufferPointer) -> Void)?
    /// The service labels written so far.
    let labels = ServiceLabelCache()

    @inline(__always)
    mutating func raw(_ text: StaticString) {
        out.append(text)
    }

    @inline(__always)
    mutating func number(_ value: UInt64) {
        out.appendDecimal(value)
    }

    mutating func string(_ text: String) {
        out.append(UInt8(ascii: "\""))
        // Most text (names, labels) needs no escape: its bytes go in at once.
        var contiguous = text
        let plain = contiguous.withUTF8 { bytes in
            guard bytes.allSatisfy({ $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) else { return false }
            out.append(bytes: UnsafeRawBufferPointer(bytes))
            return true
        }
        if plain {
            out.append(UInt8(ascii: "\""))
            return
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(byte)
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(byte)
            case 0..<0x20:
                let hex: StaticString = "0123456789abcdef"
                out.append("\\u00")
                out.append(hex.utf8Start[Int(byte >> 4)])
                out.append(hex.utf8Start[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    @inline(__always)
    mutating func counts(_ c: Counts) {
        raw("{\"packets\":")
        number(c.packets)
        raw(",\"bytes\":")
        number(c.bytes)
        raw("}")
    }

    mutating func tcp(_ c: TCPCounts) {
        raw("{\"syn\":")
        number(c.syn)
        raw(",\"synack\":")
        number(c.synack)
        raw(",\"rst\":")
        number(c.rst)
        raw(",\"fin\":")
        number(c.fin)
        raw(",\"unknown\":")
        number(c.unknown)
        raw("}")
    }

    mutating func numbers(_ values: [UInt64]) {
        list(values) { w, n in w.number(n) }
    }

    /// A `clients` or `servers` list.
    mutating func parties(_ list: [PartyRecord]) {
        raw("[")
        // Each field read where the record lies: a copy of the record (`let party =
        // list[i]`, or `enumerated()`) retains and releases its services and strings.
        list.withUnsafeBufferPointer { list in
            for i in list.indices {
                if let drain, out.count >= drainPast {
                    drain(out.bytes)
                    out.removeAll()
                }
                if i > 0 { raw(",") }
                raw("{\"ip\":\"")
                list[i].ip.appendText(to: &out)
                raw("\",\"in\":")
                counts(list[i].in)
                raw(",\"out\":")
                counts(list[i].out)
                raw(",\"services\":")
                list[i].services.withUnsafeBufferPointer { services($0) }
                if list[i].local { raw(",\"local\":true") } else { raw(",\"local\":false") }
                if let tcp = list[i].tcp {
                    raw(",\"tcp\":{\"syn\":")
                    number(tcp.syn)
                    raw(",\"synack\":")
                    number(tcp.synack)
                    raw(",\"rst\":")
                    number(tcp.rst)
                    raw(",\"fin\":")
                    number(tcp.fin)
                    raw(",\"syn_services\":")
                    number(tcp.synServices)
                    raw("}")
                }
                if let network = list[i].network {
                    raw(",\"network\":")
                    string(network)
                }
                if let country = list[i].country {
                    raw(",\"country\":")
                    string(country)
                }
                if let asn = list[i].asn {
                    raw(",\"asn\":")
                    string(asn)
                    raw(",\"as_org\":")
                    string(list[i].asOrg ?? "")
                }
                raw("}")
            }
        }
        raw("]")
    }

    /// The `networks`, `countries` and `asns` lists a record carries (each only when
    /// configured), as keys after the others.
    mutating func who(_ r: WindowRecord) {
        if let networks = r.networks {
            raw(",\"networks\":")
            list(networks) { w, n in
                w.raw("{\"network\":")
                w.string(n.network)
                w.raw(n.side == .client ? ",\"side\":\"client\"" : ",\"side\":\"server\"")
                w.inOut(n.in, n.out)
            }
        }
        if let countries = r.countries {
            raw(",\"countries\":")
            list(countries) { w, c in
                w.raw("{\"country\":")
                w.string(c.country)
                w.inOut(c.in, c.out)
            }
        }
        if let asns = r.asns {
            raw(",\"asns\":")
            list(asns) { w, a in
                w.raw("{\"asn\":")
                w.string(a.asn)
                w.raw(",\"as_org\":")
                w.string(a.asOrg)
                w.inOut(a.in, a.out)
            }
        }
    }

    /// `[`, each element as `element` writes it, comma-separated, `]`.
    mutating func list<Element>(_ elements: [Element], _ element: (inout Self, Element) -> Void) {
        raw("[")
        for i in elements.indices {
            if i > 0 { raw(",") }
            element(&self, elements[i])
        }
        raw("]")
    }

    /// An object's last two keys: `,"in":{...},"out":{...}}`.
    mutating func inOut(_ inbound: Counts, _ outbound: Counts) {
        raw(",\"in\":")
        counts(inbound)
        raw(",\"out\":")
        counts(outbound)
        raw("}")
    }

    mutating func services(_ list: UnsafeBufferPointer<ServiceCounts>) {
        raw("[")
        for i in list.indices {
            let s = list[i]
            if i > 0 { raw(",{\"service\":\"") } else { raw("{\"service\":\"") }
            labels.append(s.service, to: &out)
            // Each branch appends a literal of known length (no call to copy it).
            if s.direction == .inbound {
                raw("\",\"direction\":\"in\",\"packets\":")
            } else {
                raw("\",\"direction\":\"out\",\"packets\":")
            }
            number(s.packets)
            raw(",\"bytes\":")
            number(s.bytes)
            raw("}")
        }
        raw("]")
    }
}

/// A closed window's record with its JSON, rendered once when the window closes: the
/// stream, the store and the JSON routes send these bytes rather than render the record
/// again for each of them (or for each request).
///
/// ```swift
/// let rendered = RenderedRecord(record)
/// body += rendered.json
/// ```
public struct RenderedRecord: Sendable, Equatable {
    public let record: WindowRecord
    /// `record.jsonBytes()`: one line of JSON, no trailing newline.
    public let json: [UInt8]

    public init(_ record: WindowRecord) {
        self.record = record
        json = record.jsonBytes()
    }

    public var start: Int64 { record.start }
}
