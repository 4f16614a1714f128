internal import CYaml

/// A YAML document as text: every scalar as written (no type resolved: `12`, `null` and
/// `yes` are the strings they read as), with the 1-based line it starts on. Aliases name
/// the node their anchor marks; tags are ignored.
///
/// Composed from libyaml's event stream (libyaml as Yams builds it): Yams' own trees cost
/// about 40,000 instructions per entry of a `--networks` file (a tag object per scalar, a
/// dictionary per mapping to find repeated keys), four times libyaml's parse itself, and
/// a file of 10,000 blocks is read on every `report` run.
///
/// ```swift
/// let root = try YAMLNode.compose("networks:\n  - {cidr: 10.0.0.0/8, name: corp}\n")
/// root?.pairs?.first?.key.text    // "networks"
/// ```
indirect enum YAMLNode: Sendable {
    case scalar(String, line: Int)
    case sequence([YAMLNode], line: Int)
    case mapping([(key: YAMLNode, value: YAMLNode)], line: Int)

    /// The line the node starts on (1-based).
    var line: Int {
        switch self {
        case .scalar(_, let line), .sequence(_, let line), .mapping(_, let line): line
        }
    }

    /// The scalar's text; `nil` for a list or a mapping.
    var text: String? {
        if case .scalar(let text, _) = self { return text }
        return nil
    }

    /// The list's items; `nil` for a scalar or a mapping.
    var items: [YAMLNode]? {
        if case .sequence(let items, _) = self { return items }
        return nil
    }

    /// The mapping's pairs in the order written; `nil` for a scalar or a list.
    var pairs: [(key: YAMLNode, value: YAMLNode)]? {
        if case .mapping(let pairs, _) = self { return pairs }
        return nil
    }

    /// What the node is, for a message: the scalar's text (at most 40 characters), else
    /// `a list` or `a mapping`.
    var shown: String {
        switch self {
        case .scalar(let text, _): String(text.prefix(40))
        case .sequence: "a list"
        case .mapping: "a mapping"
        }
    }

    /// The document `text` holds, or `nil` when it holds none (empty, or comments only).
    /// Throws for text that is not YAML, more than one document, an alias without its
    /// anchor, a key written twice in one mapping, or nesting deeper than `maxDepth`.
    static func compose(_ text: String, maxDepth: Int = 64) throws(YAMLError) -> YAMLNode? {
        var bytes = Array(text.utf8)
        let count = bytes.count
        bytes.append(0)  // a valid address for an empty text
        return try bytes.withUnsafeBufferPointer { (buffer) throws(YAMLError) -> YAMLNode? in
            var composer = Composer(maxDepth: maxDepth)
            guard yaml_parser_initialize(&composer.parser) == 1 else { throw .outOfMemory }
            defer { composer.finish() }
            yaml_parser_set_input_string(&composer.parser, buffer.baseAddress, count)
            return try composer.document()
        }
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

    var line: Int? {
        switch self {
        case .notYAML(_, let line): line
        case .repeatedKey(_, let line): line
        case .outOfMemory: nil
        }
    }
}

/// Builds a `YAMLNode` from libyaml's events, one at a time.
private struct Composer {
    var parser = yaml_parser_t()
    var anchors: [String: YAMLNode] = [:]
    let maxDepth: Int

    init(maxDepth: Int) {
        self.maxDepth = maxDepth
    }

    mutating func finish() {
        yaml_parser_delete(&parser)
    }

    /// The next event; the caller deletes it (`yaml_event_delete`).
    mutating func next() throws(YAMLError) -> yaml_event_t {
        var event = yaml_event_t()
        guard yaml_parser_parse(&parser, &event) == 1 else {
            let problem = parser.problem.map { String(cString: $0) } ?? "unknown error"
            switch parser.error {
            case YAML_MEMORY_ERROR: throw .outOfMemory
            case YAML_READER_ERROR: throw .notYAML(problem: problem, line: nil)
            default: throw .notYAML(problem: problem, line: Int(parser.problem_mark.line) + 1)
            }
        }
        return event
    }

    /// The stream's one document, or `nil` for a stream without one.
    mutating func document() throws(YAMLError) -> YAMLNode? {
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

    /// The node that starts with `event` (deleted here), through the event that ends it.
    mutating func node(_ event: inout yaml_event_t, depth: Int) throws(YAMLError) -> YAMLNode {
        defer { yaml_event_delete(&event) }
        let line = Int(event.start_mark.line) + 1
        guard depth < maxDepth else { throw .notYAML(problem: "nested more than \(maxDepth) levels deep", line: line) }
        let node: YAMLNode
        let anchor: UnsafeMutablePointer<yaml_char_t>?
        switch event.type {
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            node = .scalar(String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self), line: line)
            anchor = scalar.anchor
        case YAML_SEQUENCE_START_EVENT:
            anchor = event.data.sequence_start.anchor
            var items: [YAMLNode] = []
            while true {
                var item = try next()
                if item.type == YAML_SEQUENCE_END_EVENT {
                    yaml_event_delete(&item)
                    break
                }
                items.append(try self.node(&item, depth: depth + 1))
            }
            node = .sequence(items, line: line)
        case YAML_MAPPING_START_EVENT:
            anchor = event.data.mapping_start.anchor
            var pairs: [(key: YAMLNode, value: YAMLNode)] = []
            // The keys written so far: a mapping's few keys are compared one by one, a
            // long mapping's looked up in a set.
            var keys: Set<String>?
            while true {
                var first = try next()
                if first.type == YAML_MAPPING_END_EVENT {
                    yaml_event_delete(&first)
                    break
                }
                let key = try self.node(&first, depth: depth + 1)
                var second = try next()
                let value = try self.node(&second, depth: depth + 1)
                if let text = key.text {
                    if keys == nil && pairs.count >= 16 { keys = Set(pairs.compactMap(\.key.text)) }
                    let repeated = keys == nil ? pairs.contains { $0.key.text == text } : keys?.insert(text).inserted == false
                    if repeated { throw .repeatedKey(text, line: key.line) }
                }
                pairs.append((key, value))
            }
            node = .mapping(pairs, line: line)
        case YAML_ALIAS_EVENT:
            let name = event.data.alias.anchor.map { String(cString: $0) } ?? ""
            guard let target = anchors[name] else { throw .notYAML(problem: "found undefined alias '\(name)'", line: line) }
            return target
        default:
            throw .notYAML(problem: "unexpected event \(event.type.rawValue)", line: line)
        }
        if let anchor { anchors[String(cString: anchor)] = node }
        return node
    }
}
