/// A capture problem a user can cause, described in one sentence.
public enum CaptureError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The capture file could not be opened or is not a capture file.
    case unreadableFile(path: String, reason: String)
    /// Reading stopped part-way through the file (truncated or corrupt).
    case readFailed(path: String, reason: String)
    /// The file was truncated while it was read (it is now shorter than when it was opened).
    case fileShrank(path: String, from: Int, to: Int)
    /// The link type is not one trafficmon decodes.
    case unsupportedLinkType(source: String, name: String, number: Int32)
    /// No such capture device.
    case noSuchInterface(String)
    /// The process may not capture on the device.
    case permissionDenied(interface: String, reason: String)
    /// The interface is down.
    case interfaceDown(String)
    /// The BPF filter does not compile.
    case badFilter(filter: String, reason: String)
    /// Any other libpcap failure while opening or reading a live capture.
    case captureFailed(interface: String, reason: String)
    /// The memory a capture needs could not be had (too many threads for the limits set).
    case outOfMemory(what: String)

    public var description: String {
        switch self {
        case .unreadableFile(let path, let reason):
            "cannot read capture file \(path): \(reason)"
        case .readFailed(let path, let reason):
            "capture file \(path) is truncated or corrupt: \(reason)"
        case .fileShrank(let path, let from, let to):
            "capture file \(path) was truncated while it was read (from \(from) to \(to) bytes, as logrotate's copytruncate does); "
                + "reading stopped at the cut"
        case .unsupportedLinkType(let source, let name, let number):
            "\(source) has link type \(name == "unknown" ? "\(number)" : "\(name) (\(number))"), which trafficmon does not decode; supported: "
                + "EN10MB, LINUX_SLL, LINUX_SLL2, NULL, LOOP, RAW, IPV4, IPV6"
        case .noSuchInterface(let name):
            "no capture interface named \(name) (list them with: trafficmon interfaces)"
        case .permissionDenied(let name, let reason):
            "no permission to capture on \(name) (\(reason)): run as root, or grant the binary "
                + "capabilities with: setcap cap_net_raw,cap_net_admin+eip $(command -v trafficmon)"
        case .interfaceDown(let name):
            "interface \(name) is down: bring it up first (ip link set \(name) up)"
        case .badFilter(let filter, let reason):
            "bad capture filter '\(filter)': \(reason)"
        case .captureFailed(let name, let reason):
            "capture on \(name) failed: \(reason)"
        case .outOfMemory(let what):
            "not enough memory for \(what): use fewer threads or raise the process's memory limit"
        }
    }
}
