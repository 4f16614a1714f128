import CMappedFileGuard
import CPcap
import Foundation
import TrafficCore

/// A libpcap handle on a capture file or a live interface, ready to read.
///
/// ```swift
/// let source = try PacketSource.openFile("trace.pcapng", filter: "tcp")
/// let decoder = PacketDecoder(linkType: source.linkType)!
/// ```
public final class PacketSource: @unchecked Sendable {
    /// Where the packets come from.
    public enum Origin: Sendable, Equatable {
        case file(String)
        case interface(String)

        public var name: String {
            switch self {
            case .file(let path): path
            case .interface(let name): name
            }
        }
    }

    let handle: OpaquePointer
    public let origin: Origin
    public let linkType: LinkType
    /// Multiplier from the header's sub-second field to nanoseconds (1 or 1000).
    let subsecondScale: Int64
    /// The interface's own addresses (live captures only).
    public let interfaceAddresses: [IPAddress]
    /// The memory map a capture file is read through (released after `pcap_close`).
    let mapping: MappedFile?

    /// Captured frames longer than this on the wire were merged by segmentation offload
    /// (GRO/LRO) before the capture: the interface MTU plus the longest link header. `nil`
    /// for files and where the MTU is not known (the `any` pseudo-interface).
    public var oversizedAbove: Int? {
        guard case .interface(let name) = origin, let mtu = Self.mtu(of: name) else { return nil }
        return mtu + linkType.maximumHeaderLength
    }

    /// The interface's MTU, from sysfs.
    static func mtu(of interface: String) -> Int? {
        guard !interface.contains("/"), interface != "." , interface != "..",
              let text = try? String(contentsOfFile: "/sys/class/net/\(interface)/mtu", encoding: .utf8) else { return nil }
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The installed BPF filter, kept for the records trafficmon reads from a file's map
    /// itself (`MappedRecords`; libpcap applies its own copy to what it reads).
    private(set) var filterProgram: UnsafeMutablePointer<bpf_program>?

    /// Whether reading may block for as long as a writer pleases: a file read through a
    /// pipe (a FIFO, stdin), not a memory-mapped regular file or a live capture (polled).
    var readsCanStall: Bool {
        if case .file = origin { return mapping == nil }
        return false
    }

    /// Takes ownership of `handle` once its link type is known to be supported.
    private init(handle: OpaquePointer, origin: Origin, interfaceAddresses: [IPAddress], mapping: MappedFile? = nil) {
        self.handle = handle
        self.mapping = mapping
        self.origin = origin
        self.linkType = LinkType(rawValue: pcap_datalink(handle))
        self.subsecondScale = pcap_get_tstamp_precision(handle) == Int32(PCAP_TSTAMP_PRECISION_NANO) ? 1 : 1000
        self.interfaceAddresses = interfaceAddresses
    }

    /// Refuses (and closes) a handle whose link type trafficmon cannot decode.
    private static func checkLinkType(_ handle: OpaquePointer, origin: Origin) throws(CaptureError) {
        let linkType = LinkType(rawValue: pcap_datalink(handle))
        guard linkType.isSupported else {
            let name = pcap_datalink_val_to_name(linkType.rawValue).map { String(cString: $0) } ?? "unknown"
            pcap_close(handle)
            switch origin {
            case .file(let path):
                throw .unsupportedLinkType(source: "capture file \(path)", name: name, number: linkType.rawValue)
            case .interface(let interface):
                throw .unsupportedLinkType(source: "interface \(interface)", name: name, number: linkType.rawValue)
            }
        }
    }

    deinit {
        pcap_close(handle)
        freeFilterProgram()
    }

    private func freeFilterProgram() {
        guard let filterProgram else { return }
        pcap_freecode(filterProgram)
        filterProgram.deallocate()
        self.filterProgram = nil
    }

    /// Opens a pcap or pcapng file (micro- or nanosecond timestamps alike), with an optional BPF filter.
    public static func openFile(_ path: String, filter: String? = nil) throws(CaptureError) -> PacketSource {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw .unreadableFile(path: path, reason: "it is a directory")
        }
        // A regular file is memory-mapped: trafficmon reads a classic pcap file's records
        // where they lie (`MappedRecords`), and libpcap reads the header and anything else
        // through a memory stream over the same map (no read() system call per 4 KiB).
        // Anything else (a FIFO, stdin) goes to libpcap as a path.
        var mapping = MappedFile(path: path)
        let opened: OpaquePointer?
        if let map = mapping, let stream = fmemopen(map.base, map.length, "rb") {
            opened = pcap_fopen_offline_with_tstamp_precision(stream, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errbuf)
            // libpcap owns the stream from here: pcap_close closes it.
            if opened == nil { fclose(stream) }
        } else {
            mapping = nil
            opened = pcap_open_offline_with_tstamp_precision(path, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errbuf)
        }
        guard let handle = opened else {
            var reason = Self.clean(PacketSource.text(errbuf))
            if reason.hasPrefix(path + ": ") { reason.removeFirst(path.count + 2) }
            throw .unreadableFile(path: path, reason: reason)
        }
        try checkLinkType(handle, origin: .file(path))
        let source = PacketSource(handle: handle, origin: .file(path), interfaceAddresses: [], mapping: mapping)
        if let filter { try source.setFilter(filter) }
        return source
    }

    /// Options for a live capture.
    public struct LiveOptions: Sendable {
        public var interface: String
        /// Bytes kept of each frame. Attribution needs the headers only; byte counts use the wire length.
        public var snapshotLength: Int32 = 256
        /// Kernel ring size in bytes.
        public var bufferSize: Int32 = 32 << 20
        /// Deliver each packet at once (more wake-ups); off by default, with `timeoutMilliseconds` batching.
        public var immediateMode = false
        /// How long the kernel may hold a batch before handing it over.
        public var timeoutMilliseconds: Int32 = 100
        public var promiscuous = true
        public var filter: String?

        public init(interface: String) { self.interface = interface }
    }

    /// Opens a live capture (`pcap_create` + `pcap_activate`) in non-blocking mode.
    public static func openLive(_ options: LiveOptions) throws(CaptureError) -> PacketSource {
        let name = options.interface
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        let devices = (try? InterfaceInfo.list()) ?? []
        guard let handle = pcap_create(name, &errbuf) else {
            throw .captureFailed(interface: name, reason: Self.clean(PacketSource.text(errbuf)))
        }
        pcap_set_snaplen(handle, options.snapshotLength)
        pcap_set_promisc(handle, options.promiscuous ? 1 : 0)
        pcap_set_timeout(handle, options.timeoutMilliseconds)
        pcap_set_buffer_size(handle, options.bufferSize)
        pcap_set_immediate_mode(handle, options.immediateMode ? 1 : 0)
        _ = pcap_set_tstamp_precision(handle, Int32(PCAP_TSTAMP_PRECISION_NANO))
        let status = pcap_activate(handle)
        if status < 0 {
            let detail = Self.clean(String(cString: pcap_geterr(handle)))
            pcap_close(handle)
            switch status {
            case PCAP_ERROR_NO_SUCH_DEVICE: throw .noSuchInterface(name)
            case PCAP_ERROR_PERM_DENIED, PCAP_ERROR_PROMISC_PERM_DENIED:
                throw .permissionDenied(interface: name, reason: detail.isEmpty ? "permission denied" : detail)
            case PCAP_ERROR_IFACE_NOT_UP: throw .interfaceDown(name)
            default:
                if !devices.contains(where: { $0.name == name }) { throw .noSuchInterface(name) }
                throw .captureFailed(interface: name, reason: detail.isEmpty ? String(cString: pcap_statustostr(status)) : detail)
            }
        }
        let addresses = devices.first(where: { $0.name == name })?.addresses ?? []
        try checkLinkType(handle, origin: .interface(name))
        let source = PacketSource(handle: handle, origin: .interface(name), interfaceAddresses: addresses)
        if let filter = options.filter { try source.setFilter(filter) }
        guard pcap_setnonblock(handle, 1, &errbuf) == 0 else {
            throw .captureFailed(interface: name, reason: Self.clean(PacketSource.text(errbuf)))
        }
        return source
    }

    /// Compiles and installs a BPF filter (tcpdump syntax).
    public func setFilter(_ expression: String) throws(CaptureError) {
        let program = UnsafeMutablePointer<bpf_program>.allocate(capacity: 1)
        program.initialize(to: bpf_program())
        guard pcap_compile(handle, program, expression, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            program.deallocate()
            throw .badFilter(filter: expression, reason: Self.clean(String(cString: pcap_geterr(handle))))
        }
        guard pcap_setfilter(handle, program) == 0 else {
            pcap_freecode(program)
            program.deallocate()
            throw .badFilter(filter: expression, reason: Self.clean(String(cString: pcap_geterr(handle))))
        }
        freeFilterProgram()
        filterProgram = program
    }

    /// The decoder for this source's link type (checked supported at open).
    func decoder() throws(CaptureError) -> PacketDecoder {
        guard let decoder = PacketDecoder(linkType: linkType) else {
            throw .unsupportedLinkType(source: origin.name, name: linkType.description, number: linkType.rawValue)
        }
        return decoder
    }

    /// A packet header's timestamp in nanoseconds since the Unix epoch, for a source whose
    /// `subsecondScale` is `scale` (a static function, so the packet path does not retain
    /// the source to call it).
    @inline(__always)
    static func nanoseconds(_ header: UnsafePointer<pcap_pkthdr>, scale: Int64) -> Int64 {
        Int64(header.pointee.ts.tv_sec) &* 1_000_000_000 &+ Int64(header.pointee.ts.tv_usec) &* scale
    }

    /// The error a failed `pcap_dispatch` on this source means.
    func readError(reason: String? = nil) -> CaptureError {
        switch origin {
        case .file(let path): .readFailed(path: path, reason: reason ?? lastError)
        case .interface(let name): .captureFailed(interface: name, reason: reason ?? lastError)
        }
    }

    /// The error for a capture file that shrank while it was read.
    func shrankError() -> CaptureError {
        .fileShrank(path: origin.name, from: mapping?.length ?? 0, to: mapping?.currentSize() ?? 0)
    }

    /// How far libpcap has read into the file's memory map (`nil` without one).
    var libpcapReadPosition: Int? {
        guard mapping != nil, let stream = pcap_file(handle) else { return nil }
        return ftell(stream)
    }

    /// The last libpcap error on this handle.
    var lastError: String { Self.clean(String(cString: pcap_geterr(handle))) }

    /// Cumulative capture statistics of a live capture (`nil` for files).
    public func statistics() -> (received: UInt64, kernelDropped: UInt64, interfaceDropped: UInt64)? {
        guard case .interface = origin else { return nil }
        var stats = pcap_stat()
        guard pcap_stats(handle, &stats) == 0 else { return nil }
        return (UInt64(stats.ps_recv), UInt64(stats.ps_drop), UInt64(stats.ps_ifdrop))
    }

    /// The descriptor to `poll` on for a live capture.
    var selectableDescriptor: Int32 { pcap_get_selectable_fd(handle) }

    /// The NUL-terminated text in a libpcap error buffer.
    static func text(_ buffer: [CChar]) -> String {
        buffer.withUnsafeBufferPointer { p in p.baseAddress.map { String(cString: $0) } ?? "" }
    }

    static func clean(_ message: String) -> String {
        message.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// A read-only memory map of a whole regular file.
///
/// A file truncated while it is mapped loses its pages past the new end, and touching one
/// raises SIGBUS. The map is registered with `CMappedFileGuard`, which turns that into a
/// page of 0xFF bytes (every reader stops at the next record header) and a flag; readers
/// also compare the file's size (`stat` of its path, while the path still leads to it) with
/// the map before they enter a new range of it (`MappedRecords`, every 4 MiB) and after
/// each libpcap read, and end with `CaptureError.fileShrank`. A file removed while open
/// keeps its pages: a normal read.
///
/// ```swift
/// if let map = MappedFile(path: "trace.pcap") { use(map.base, map.length) }
/// ```
final class MappedFile: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let length: Int
    /// The file's path and identity (device, inode), to see its size as it is read; no
    /// descriptor is kept (`report` may open thousands of files at once).
    let path: String
    let device: UInt64
    let inode: UInt64
    /// The map's slot in the SIGBUS guard (-1: unguarded).
    let guardSlot: Int32
    /// How much of the front has been released (`release(before:)`).
    var released = 0

    /// `nil` when `path` is not a non-empty regular file or cannot be mapped; the caller
    /// then opens it the ordinary way (and reports that way's error).
    init?(path: String) {
        // stat first: opening a FIFO would block, and closing it again would cut off its writer.
        var before = stat()
        guard stat(path, &before) == 0, before.st_mode & S_IFMT == S_IFREG else { return nil }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size > 0 else { return nil }
        let length = Int(info.st_size)
        guard let base = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else { return nil }
        _ = madvise(base, length, MADV_SEQUENTIAL)
        self.base = base
        self.length = length
        self.path = path
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        guardSlot = trafficmon_map_guard_register(base, length)
    }

    deinit {
        trafficmon_map_guard_unregister(guardSlot)
        munmap(base, length)
    }

    /// The file's size now; `nil` when its path no longer leads to it (removed, or renamed
    /// and replaced: rotation), when only the SIGBUS guard can tell a cut.
    func currentSize() -> Int? {
        var info = stat()
        guard stat(path, &info) == 0, UInt64(info.st_dev) == device, UInt64(info.st_ino) == inode else { return nil }
        return Int(info.st_size)
    }

    /// Whether a page of the map was replaced after a SIGBUS (the file was cut under it).
    var guardFaulted: Bool { trafficmon_map_guard_faulted(guardSlot) != 0 }

    /// Whether the file is shorter than the map: truncated while it was read.
    var shrank: Bool {
        if guardFaulted { return true }
        return currentSize().map { $0 < length } ?? false
    }

    /// Pages are released and mapped ahead in steps of this many bytes.
    static let step = 2 << 20

    /// Guards `released`, `populated` and `canPopulate`: counting threads release and map
    /// in pages (one step at a time) while the walker reads.
    private let lock = NSLock()

    /// Lets go of the pages before `offset` (in whole steps), so a long capture file does not
    /// stay resident (the page cache keeps them; a re-read refaults them).
    func release(before offset: Int) {
        lock.lock()
        defer { lock.unlock() }
        let upTo = min(offset, length) / Self.step * Self.step
        guard upTo > released else { return }
        _ = madvise(base + released, upTo - released, MADV_DONTNEED)
        released = upTo
    }

    /// How far `populate` has mapped the file in.
    private(set) var populated = 0
    /// `madvise` took `MADV_POPULATE_READ` (Linux 5.14 and later) so far.
    private var canPopulate = true
    /// Linux's MADV_POPULATE_READ (not in every libc's headers).
    private static let populateRead: Int32 = 22

    /// Maps in the next whole step of pages at or after `start` (where the reader is), if it
    /// begins before `end`: ahead of their reader, so the reading thread takes no page
    /// faults there. Returns `false` when there is nothing to do or the kernel cannot.
    func populateStep(from start: Int, before end: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        // Whole steps from a step's start: madvise takes only page-aligned addresses, and
        // a step that ended at an unaligned `end` would make every later one fail.
        let from = max(populated, released, start / Self.step * Self.step)
        guard canPopulate, from < min(end, length) else { return false }
        let to = min(from + Self.step, length)
        guard madvise(base + from, to - from, Self.populateRead) == 0 else {
            canPopulate = false
            return false
        }
        populated = to
        return true
    }
}
