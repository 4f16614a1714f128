import Foundation
import OrderedCollections
import TrafficCore

/// Reads a `--networks` file (YAML):
///
/// ```yaml
/// networks:
///   - cidr: 192.0.2.0/24
///     name: office
///     labels: {site: paris}     # optional; exported once, as trafficmon_network_info{network,site}
///   - cidr: 2001:db8:1::/48
///     name: lab
/// ```
///
/// Several blocks may share a name (their labels then add up, to at most `maxLabels`; one
/// label with two values is refused). The same block under two names, a bad block, a
/// missing or unknown key, a name `unknown` or `other`, or a label name Prometheus would
/// refuse is an error naming the file and line.
///
/// ```swift
/// let networks = try NetworksFile.load(path: "/etc/trafficmon/networks.yaml")
/// networks.name(of: IPAddress("192.0.2.7")!)   // "office"
/// ```
public enum NetworksFile {
    /// The longest network name accepted, in characters.
    public static let maxNameLength = 128

    /// The most labels one network may carry (each is a label of `trafficmon_network_info`).
    public static let maxLabels = 32
    /// The largest file read, in bytes (100,000 blocks take about 5 MB).
    public static let maxFileSize = 64 << 20

    /// Reads and checks the file at `path`.
    public static func load(path: String) throws(NetworksFileError) -> NamedNetworks {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            let exists = FileManager.default.fileExists(atPath: path)
            throw NetworksFileError(path: path, line: nil, message: exists ? "cannot be read" : "does not exist")
        }
        defer { try? handle.close() }
        let data: Data
        do {
            // At most one byte past the limit: a device or a pipe that never ends is refused too.
            data = try handle.read(upToCount: maxFileSize + 1) ?? Data()
        } catch {
            throw NetworksFileError(path: path, line: nil, message: "cannot be read")
        }
        guard data.count <= maxFileSize else {
            throw NetworksFileError(path: path, line: nil, message: "is larger than \(maxFileSize >> 20) MiB")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw NetworksFileError(path: path, line: nil, message: "is not UTF-8 text")
        }
        return try parse(text, path: path)
    }

    /// Checks `text`, the contents of `path` (named in errors).
    public static func parse(_ text: String, path: String) throws(NetworksFileError) -> NamedNetworks {
        func fail(_ node: YAMLNode?, _ message: String) -> NetworksFileError {
            NetworksFileError(path: path, line: node?.line, message: message)
        }
        let root: YAMLNode?
        do {
            root = try YAMLNode.compose(text)
        } catch {
            throw Self.describe(error, path: path)
        }
        guard let root else { throw NetworksFileError(path: path, line: 1, message: "is empty: it needs a 'networks:' list") }
        guard let top = root.pairs else { throw fail(root, "the file must be a mapping with a 'networks:' list") }
        var list: YAMLNode?
        for (key, value) in top {
            guard key.text == "networks" else {
                throw fail(key, "unknown key '\(key.shown)' (the file holds one key, 'networks')")
            }
            list = value
        }
        guard let list else { throw fail(root, "no 'networks:' list") }
        guard let entries = list.items else { throw fail(list, "'networks' must be a list of entries with 'cidr' and 'name'") }

        var blocks: [NamedNetworks.Block] = []
        var lines: [Int] = []
        // Per network, its labels in the order first given.
        var labels: [String: OrderedDictionary<String, String>] = [:]
        var labelLines: [String: Int] = [:]
        for entry in entries {
            guard let fields = entry.pairs else { throw fail(entry, "each entry of 'networks' must be a mapping with 'cidr' and 'name'") }
            var cidr: YAMLNode?, name: YAMLNode?, entryLabels: YAMLNode?
            for (key, value) in fields {
                switch key.text {
                case "cidr": cidr = value
                case "name": name = value
                case "labels": entryLabels = value
                default: throw fail(key, "unknown key '\(key.shown)' (an entry has 'cidr', 'name' and optionally 'labels')")
                }
            }
            guard let cidr else { throw fail(entry, "the entry has no 'cidr'") }
            guard let name else { throw fail(entry, "the entry has no 'name'") }
            guard let cidrText = cidr.text else { throw fail(cidr, "'cidr' must be a network such as 192.0.2.0/24") }
            let prefix: NetworkPrefix
            do {
                prefix = try NetworkPrefix(parsing: cidrText)
            } catch {
                throw fail(cidr, "\(error)")
            }
            guard let nameText = name.text else { throw fail(name, "'name' must be text") }
            try checkName(nameText, node: name, fail: fail)
            if let entryLabels {
                guard let pairs = entryLabels.pairs else { throw fail(entryLabels, "'labels' must be a mapping such as {site: paris}") }
                var known = labels[nameText] ?? [:]
                for (key, value) in pairs {
                    guard let labelName = key.text, Self.isLabelName(labelName) else {
                        throw fail(key, "'\(key.shown)' is not a label name (letters, digits and _, not starting with a digit or __)")
                    }
                    guard labelName != "network" else { throw fail(key, "the label 'network' is the network's name; pick another label name") }
                    guard let labelValue = value.text else { throw fail(value, "the label '\(labelName)' must have a text value") }
                    if let earlier = known[labelName] {
                        guard earlier == labelValue else {
                            let line = labelLines[nameText].map { " on line \($0)" } ?? ""
                            throw fail(value, "network '\(nameText)' has \(labelName): \(labelValue) here but \(labelName): \(earlier)\(line)")
                        }
                    } else {
                        guard known.count < maxLabels else { throw fail(key, "network '\(nameText)' has more than \(maxLabels) labels") }
                        known[labelName] = labelValue
                    }
                }
                labels[nameText] = known
                if labelLines[nameText] == nil { labelLines[nameText] = entryLabels.line }
            }
            blocks.append(NamedNetworks.Block(prefix: prefix, name: nameText))
            lines.append(cidr.line)
        }
        do {
            return try NamedNetworks(blocks, labels: labels.mapValues { $0.map { (name: $0.key, value: $0.value) } })
        } catch {
            switch error {
            case .conflict(let prefix, let first, let second):
                let firstLine = " on line \(lines[first])"
                throw NetworksFileError(
                    path: path, line: lines[second],
                    message: "\(prefix) is named '\(blocks[second].name)' here but '\(blocks[first].name)'\(firstLine); a block has one name")
            case .reservedName(let position):
                throw NetworksFileError(path: path, line: lines[position], message: "the name '\(blocks[position].name)' is reserved")
            }
        }
    }

    static func checkName(_ name: String, node: YAMLNode, fail: (YAMLNode?, String) -> NetworksFileError) throws(NetworksFileError) {
        if name.isEmpty { throw fail(node, "'name' is empty") }
        if name == NamedNetworks.unknown || name == NamedNetworks.other {
            throw fail(node, "the name '\(name)' is reserved (traffic outside every network counts as 'unknown', parties not known one by one as 'other')")
        }
        // Printable ASCII (most names) holds no control character and counts one character
        // per byte; other text is looked at character by character.
        let printableASCII = name.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
        if (printableASCII ? name.utf8.count : name.count) > maxNameLength {
            throw fail(node, "the name is longer than \(maxNameLength) characters")
        }
        if !printableASCII && name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw fail(node, "the name holds a control character")
        }
    }

    /// Prometheus' label name rule, without the reserved `__` prefix.
    static func isLabelName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !name.hasPrefix("__") else { return false }
        func letter(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == UInt8(ascii: "_") }
        return letter(first) && name.utf8.allSatisfy { letter($0) || ($0 >= 0x30 && $0 <= 0x39) }
    }

    static func describe(_ error: YAMLError, path: String) -> NetworksFileError {
        switch error {
        case .notYAML(let problem, let line):
            return NetworksFileError(path: path, line: line, message: "is not valid YAML: \(problem)")
        case .repeatedKey(let key, let line):
            return NetworksFileError(path: path, line: line, message: "a key appears twice in one mapping: \(key)")
        case .outOfMemory:
            return NetworksFileError(path: path, line: nil, message: "cannot be read: out of memory")
        }
    }
}

/// A `--networks` file that cannot be used: `FILE:LINE: what is wrong`.
public struct NetworksFileError: Error, CustomStringConvertible, Sendable {
    public let path: String
    /// 1-based; `nil` when the problem is the whole file.
    public let line: Int?
    public let message: String

    public var description: String {
        if let line { return "\(path):\(line): \(message)" }
        return "\(path) \(message)"
    }
}
