import Foundation

/// The standard `process_*` family, read from `/proc/self` at scrape time (as the
/// Prometheus client libraries do on Linux).
struct ProcessMetrics: Sendable {
    let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
    let bootTime: Double = ProcessMetrics.readBootTime()

    func append(to out: inout [UInt8]) {
        var lines: [String] = []
        func family(_ name: String, _ type: String, _ help: String, _ value: Double?) {
            guard let value else { return }
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            lines.append("\(name) \(Self.format(value))")
        }
        let stat = Self.readStat()
        family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
               stat.map { ($0.utime + $0.stime) / ticksPerSecond })
        family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", stat.map { $0.rss * pageSize })
        family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", stat.map { $0.vsize })
        family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
               stat.map { bootTime + $0.startTicks / ticksPerSecond })
        family("process_open_fds", "gauge", "Number of open file descriptors.",
               (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")).map { Double($0.count) })
        family("process_max_fds", "gauge", "Maximum number of open file descriptors.", Self.readMaxFDs())
        out.append(contentsOf: Array((lines.joined(separator: "\n") + "\n").utf8))
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }

    struct Stat {
        var utime: Double, stime: Double, startTicks: Double, vsize: Double, rss: Double
    }

    /// Fields of /proc/self/stat after the command name (which may contain spaces).
    static func readStat() -> Stat? {
        guard let text = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3); utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
        func f(_ n: Int) -> Double? { n - 3 < fields.count ? Double(fields[n - 3]) : nil }
        guard let utime = f(14), let stime = f(15), let start = f(22), let vsize = f(23), let rss = f(24) else { return nil }
        return Stat(utime: utime, stime: stime, startTicks: start, vsize: vsize, rss: rss)
    }

    static func readBootTime() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return 0
    }

    static func readMaxFDs() -> Double? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        return Double(limit.rlim_cur)
    }
}
