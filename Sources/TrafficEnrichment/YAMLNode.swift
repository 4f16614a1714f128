internal import CYAML

/// A node of a YAML document read as text: every scalar as written (no type resolved:
/// `12`, `null` and `yes` are the strings they read as), with the 1-based line it starts
/// on. Aliases name the node their anchor marks; tags are ignored.
///
/// The document is composed from libyaml's event stream into three flat arrays (nodes,
/// children, texts): no object per node, nothing to release node by node.
///
/// ```swift
/// let root = try YAMLNode.compose("networks:\n  - {cidr: 10.0.0.0/8, name: corp}\n")
/// root?.pairs?.first?.key.text    // "networks"
/// ```
struct YAMLNode: Sendable {
    fileprivate let document: YAMLDocument
    /// The node's place in its document: an alias has the index of the node it names.
    let index: Int32

    private var entry: YAMLDocument.Entry { document.nodes[Int(index)] }

    /// The line the node starts on (1-based).
    var line: Int { Int(entry.line) }

    /// The scalar's text; `nil` for a list or a mapping.
    var text: String? { document.text(of: index) }

    /// The list's items; `nil` for a scalar or a mapping.
    var items: [YAMLNode]? {
        let e = entry
        guard e.kind == .sequence else { return nil }
        return document.children[Int(e.start)..<Int(e.start + e.count)].map { YAMLNode(document: document, index: $0) }
    }

    /// The mapping's pairs in the order written; `nil` for a scalar or a list.
    var pairs: [(key: YAMLNode, value: YAMLNode)]? {
        let e = entry
        guard e.kind == .mapping else { return nil }
        return stride(from: Int(e.start), to: Int(e.start + e.count), by: 2).map { i in
            (YAMLNode(document: document, index: document.children[i]), YAMLNode(document: document, index: document.children[i + 1]))
        }
    }

    /// What the node is, for a message: the scalar's text (at most 40 characters), else
    /// `a list` or `a mapping`.
    var shown: String {
        switch entry.kind {
        case .scalar: String((text ?? "").prefix(40))
        case .sequence: "a list"
        case .mapping: "a mapping"
        }
    }

    /// The document `text` holds, or `nil` when it holds none (empty, or comments only).
    /// Throws for text that is not YAML, more than one document, an alias without its
    /// anchor, a key written twice in one mapping, or nesting deeper than `maxDepth`.
    static func compose(_ text: String, maxDepth: Int = 64) throws(YAMLError) -> YAMLNode? {
        // libyaml reads the text's bytes where they lie (no copy of a file of up to 64 MiB).
        var text = text
        let composed = text.withUTF8 { buffer -> Result<YAMLNode?, YAMLError> in
            // An empty text holds no document (and may have no address).
            guard let baseAddress = buffer.baseAddress, !buffer.isEmpty else { return .success(nil) }
            do throws(YAMLError) {
                var composer = try Composer(input: baseAddress, count: buffer.count, maxDepth: maxDepth)
                defer { composer.finish() }
                guard let root = try composer.document() else { return .success(nil) }
                let document = YAMLDocument(nodes: composer.nodes, children: composer.children, texts: composer.texts)
                return .success(YAMLNode(document: document, index: root))
            } catch {
                return .failure(error)
            }
        }
        return try composed.get()
    }
}

/// A composed document's nodes: each collection's children are a run of `children`
/// (a mapping's alternate key, value), each scalar's text an entry of `texts`.
private final class YAMLDocument: Sendable {
    enum Kind: UInt8 { case scalar, sequence, mapping }

    struct Entry {
        var kind: Kind
        var line: Int32
        /// A scalar's index in `texts`; a collection's first child in `children`.
        var start: Int32
        /// A collection's children (a mapping's keys and values).
        var count: Int32
    }

    let nodes: [Entry]
    let children: [Int32]
    let texts: [String]

    init(nodes: [Entry], children: [Int32], texts: [String]) {
        self.nodes = nodes
        self.children = children
        self.texts = texts
    }

    /// The text of node `index` when it is a scalar.
    func text(of index: Int32) -> String? { Self.text(of: index, nodes: nodes, texts: texts) }

    /// The text of node `index` of `nodes` when it is a scalar (also while the arrays fill).
    static func text(of index: Int32, nodes: [Entry], texts: [String]) -> String? {
        let entry = nodes[Int(index)]
        return entry.kind == .scalar ? texts[Int(entry.start)] : nil
    }
}

/// Why a text is not a YAML document.
enum YAMLError: Error, Sendable {
    /// libyaml's problem (or the composer's: a second document, an alias without its
    /// anchor, nesting too deep), at a 1-based line where one is known.
    case notYAML(problem: String, line: Int?)
    /// A key written twice in one mapping, where the second is.
    case repeatedKey(String, line: Int)
    case outOfMemory
}

/// Builds a document's arrays from libyaml's events, one at a time; a node is added once
/// it is complete, so a collection's children come before it.
private struct Composer {
    /// libyaml's parser, at an address of its own: it keeps a pointer to itself.
    let parser: UnsafeMutablePointer<yaml_parser_t>
    let input: UnsafeBufferPointer<UInt8>
    var nodes: [YAMLDocument.Entry] = []
    var children: [Int32] = []
    var texts: [String] = []
    /// The children of the collections being read, innermost last.
    var pending: [Int32] = []
    var anchors: [String: Int32] = [:]
    let maxDepth: Int

    /// A parser over the `count` bytes at `input` (which outlive it); `finish()` frees it.
    init(input: UnsafePointer<UInt8>, count: Int, maxDepth: Int) throws(YAMLError) {
        parser = .allocate(capacity: 1)
        parser.initialize(to: yaml_parser_t())
        guard yaml_parser_initialize(parser) == 1 else {
            parser.deallocate()
            throw .outOfMemory
        }
        yaml_parser_set_input_string(parser, input, count)
        self.input = UnsafeBufferPointer(start: input, count: count)
        self.maxDepth = maxDepth
    }

    func finish() {
        yaml_parser_delete(parser)
        parser.deallocate()
    }

    /// The next event; the caller deletes it (`yaml_event_delete`).
    mutating func next() throws(YAMLError) -> yaml_event_t {
        var event = yaml_event_t()
        guard yaml_parser_parse(parser, &event) == 1 else {
            let p = parser.pointee
            let problem = p.problem.map { String(cString: $0) } ?? "unknown error"
            switch p.error {
            case YAML_MEMORY_ERROR:
                throw .outOfMemory
            case YAML_READER_ERROR:
                // A reader error gives the offset of the byte, not a line: count the lines before it.
                let line = 1 + input.prefix(p.problem_offset).reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
                throw .notYAML(problem: problem, line: line)
            default:
                throw .notYAML(problem: problem, line: Int(p.problem_mark.line) + 1)
            }
        }
        return event
    }

    /// The stream's one document (its root node), or `nil` for a stream without one.
    mutating func document() throws(YAMLError) -> Int32? {
        var event = try next()  // stream start
        yaml_event_delete(&event)
        event = try next()
        defer { yaml_event_delete(&event) }
        guard event.type == YAML_DOCUMENT_START_EVENT else { return nil }
        var first = try next()
        let root = try node(&first, depth: 0)
        var end = try next()  // document end
        yaml_event_delete(&end)
        var after = try next()
        defer { yaml_event_delete(&after) }
        guard after.type == YAML_STREAM_END_EVENT else {
            throw .notYAML(problem: "expected a single document in the stream", line: Int(after.start_mark.line) + 1)
        }
        return root
    }

    /// Reads the node that starts with `event` (deleted here) through the event that ends
    /// it; returns its index.
    mutating func node(_ event: inout yaml_event_t, depth: Int) throws(YAMLError) -> Int32 {
        defer { yaml_event_delete(&event) }
        let line = Int32(clamping: event.start_mark.line + 1)
        guard depth < maxDepth else { throw .notYAML(problem: "nested more than \(maxDepth) levels deep", line: Int(line)) }
        let entry: YAMLDocument.Entry
        let anchor: UnsafeMutablePointer<yaml_char_t>?
        switch event.type {
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            texts.append(String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self))
            entry = .init(kind: .scalar, line: line, start: Int32(texts.count - 1), count: 0)
            anchor = scalar.anchor
        case YAML_SEQUENCE_START_EVENT:
            anchor = event.data.sequence_start.anchor
            let base = pending.count
            while true {
                var item = try next()
                if item.type == YAML_SEQUENCE_END_EVENT {
                    yaml_event_delete(&item)
                    break
                }
                pending.append(try node(&item, depth: depth + 1))
            }
            entry = collection(.sequence, line: line, from: base)
        case YAML_MAPPING_START_EVENT:
            anchor = event.data.mapping_start.anchor
            let base = pending.count
            // The keys written so far: a mapping's first 16 are compared one by one (an
            // entry's two or three allocate no set: a set each cost 14% of reading a
            // 10,000-entry file, measured), a longer mapping's looked up in a set.
            var keys: Set<String>?
            while true {
                var first = try next()
                if first.type == YAML_MAPPING_END_EVENT {
                    yaml_event_delete(&first)
                    break
                }
                let key = try node(&first, depth: depth + 1)
                var second = try next()
                let value = try node(&second, depth: depth + 1)
                if let text = keyText(key) {
                    if keys == nil && pending.count - base >= 32 {
                        keys = Set(stride(from: base, to: pending.count, by: 2).compactMap { keyText(pending[$0]) })
                    }
                    let repeated = keys == nil
                        ? stride(from: base, to: pending.count, by: 2).contains { keyText(pending[$0]) == text }
                        : keys?.insert(text).inserted == false
                    if repeated { throw .repeatedKey(text, line: Int(nodes[Int(key)].line)) }
                }
                pending.append(key)
                pending.append(value)
            }
            entry = collection(.mapping, line: line, from: base)
        case YAML_ALIAS_EVENT:
            let name = event.data.alias.anchor.map { String(cString: $0) } ?? ""
            guard let target = anchors[name] else { throw .notYAML(problem: "found undefined alias '\(name)'", line: Int(line)) }
            return target
        default:
            throw .notYAML(problem: "unexpected event \(event.type.rawValue)", line: Int(line))
        }
        nodes.append(entry)
        let index = Int32(nodes.count - 1)
        if let anchor { anchors[String(cString: anchor)] = index }
        return index
    }

    /// The text of node `index` when it is a scalar.
    func keyText(_ index: Int32) -> String? {
        YAMLDocument.text(of: index, nodes: nodes, texts: texts)
    }

    /// A collection whose children are `pending[base...]`, moved to `children`.
    mutating func collection(_ kind: YAMLDocument.Kind, line: Int32, from base: Int) -> YAMLDocument.Entry {
        let entry = YAMLDocument.Entry(kind: kind, line: line, start: Int32(children.count), count: Int32(pending.count - base))
        children.append(contentsOf: pending[base...])
        pending.removeSubrange(base...)
        return entry
    }
}
