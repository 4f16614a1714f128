import Foundation
import Testing
import TrafficTestSupport

/// The Debian package as an administrator meets it: built by scripts/package-deb from the
/// release binary, checked by lintian and systemd-analyze, installed into a scratch root
/// with dpkg (upgraded, removed, purged), and its binary, manual page and completions used.
///
/// The package is built once per test run, before it: scripts/test runs scripts/package-deb
/// (a release build of its own) and passes the package's path in TRAFFICMON_TEST_DEB, or
/// the log of its failure in TRAFFICMON_TEST_DEB_FAILED. Without either, these tests fail
/// and say how to run them.
@Suite("Debian package", .serialized)
struct DebianPackageTests {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixture = repository.appendingPathComponent("Tests/TrafficCaptureTests/Fixtures/null-dns.pcap")

    /// The package under test, the same for every test of the suite.
    static let package: Result<URL, TestProcess.Failure> = {
        if let log = ProcessInfo.processInfo.environment["TRAFFICMON_TEST_DEB_FAILED"] {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? "(no log at \(log))"
            return .failure(.init("scripts/package-deb failed before the tests:\n\(text.suffix(3000))"))
        }
        guard let path = ProcessInfo.processInfo.environment["TRAFFICMON_TEST_DEB"], !path.isEmpty else {
            // swift test holds the build directory's lock while tests run, so a release build
            // from here would wait for it forever.
            return .failure(.init("""
                no package to test: run scripts/test, or
                TRAFFICMON_TEST_DEB=$(scripts/package-deb) swift test --filter DebianPackageTests
                """))
        }
        return FileManager.default.fileExists(atPath: path)
            ? .success(URL(fileURLWithPath: path)) : .failure(.init("TRAFFICMON_TEST_DEB=\(path): no such file"))
    }()

    /// The package's files, unpacked once (dpkg-deb -x) for the tests that only read them.
    static let unpacked: Result<URL, TestProcess.Failure> = {
        do {
            let deb = try package.get()
            let dir = try TestProcess.temporaryDirectory("trafficmon-deb-x")
            let result = try run(["dpkg-deb", "-x", deb.path, dir.path])
            return result.status == 0 ? .success(dir) : .failure(.init("dpkg-deb -x: \(result.stderr)"))
        } catch {
            return .failure(.init("\(error)"))
        }
    }()

    @Test("the package lists its files, all root's, with a stripped binary of at most 50 MB and its version")
    func contents() throws {
        let deb = try Self.package.get()
        let listing = try Self.run(["dpkg-deb", "--contents", deb.path])
        try #require(listing.status == 0, "dpkg-deb --contents: \(listing.stderr)")
        var entries: [String: (mode: String, owner: String, size: Int)] = [:]
        for line in listing.stdoutText.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6 else { continue }
            entries[String(fields[5]).replacingOccurrences(of: "./", with: "/", options: .anchored)] =
                (String(fields[0]), String(fields[1]), Int(fields[2]) ?? -1)
        }
        for path in [
            "/usr/bin/trafficmon", "/lib/systemd/system/trafficmon.service", "/etc/default/trafficmon",
            "/usr/share/man/man1/trafficmon.1.gz", "/usr/share/bash-completion/completions/trafficmon",
            "/usr/share/zsh/vendor-completions/_trafficmon", "/usr/share/fish/vendor_completions.d/trafficmon.fish",
            "/usr/share/trafficmon/grafana/dashboards/trafficmon.json",
            "/usr/share/trafficmon/grafana/prometheus/recording_rules.yml",
            "/usr/share/trafficmon/grafana/prometheus/alerts.yml",
            "/usr/share/trafficmon/grafana/provisioning/datasources/prometheus.yaml",
            "/usr/share/doc/trafficmon/copyright", "/usr/share/doc/trafficmon/changelog.gz",
        ] {
            #expect(entries[path] != nil, "\(path) is not in the package:\n\(listing.stdoutText)")
        }
        for (path, entry) in entries {
            #expect(entry.owner == "root/root", "\(path) belongs to \(entry.owner)")
        }
        let binary = try #require(entries["/usr/bin/trafficmon"])
        #expect(binary.mode == "-rwxr-xr-x")
        #expect(binary.size > 1_000_000 && binary.size <= 50_000_000, "the binary is \(binary.size) bytes")

        let unpacked = try Self.unpacked.get()
        let sections = try Self.run(["readelf", "-S", unpacked.appendingPathComponent("usr/bin/trafficmon").path])
        #expect(!sections.stdoutText.contains(".symtab") && !sections.stdoutText.contains(".debug_info"), "the binary is not stripped")

        let control = try Self.run(["dpkg-deb", "--field", deb.path])
        let fields = Dictionary(control.stdoutText.split(separator: "\n").compactMap { line -> (String, String)? in
            guard !line.hasPrefix(" "), let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }) { first, _ in first }
        #expect(fields["Package"] == "trafficmon")
        #expect(fields["Architecture"] == "amd64")
        #expect(fields["Section"] == "net")
        let version = try #require(fields["Version"])
        #expect(deb.lastPathComponent == "trafficmon_\(version)_amd64.deb")
        // The version comes from the binary: 0.1.0 (git <rev>, <n> commits, <time>) is 0.1.0+git<n>.g<rev>.
        let stamp = try Self.run([unpacked.appendingPathComponent("usr/bin/trafficmon").path, "--version"]).stdoutText
        let upstream = String(stamp.prefix { $0 != " " })
        #expect(version == upstream || version.hasPrefix(upstream + "+git"), "version \(version) from --version '\(stamp)'")
        if let match = stamp.firstMatch(of: #/\(git ([0-9a-f]+)(-dirty)?, ([0-9]+) commits, /#) {
            #expect(version.hasPrefix("\(upstream)+git\(match.3).g\(match.1)"), "version \(version) from --version '\(stamp)'")
        }
        let conffiles = try Self.run(["sh", "-c", "dpkg-deb --ctrl-tarfile \"$1\" | tar -xO ./conffiles", "sh", deb.path])
        #expect(conffiles.stdoutText == "/etc/default/trafficmon\n")
    }

    @Test("lintian reports no error")
    func lintian() throws {
        let deb = try Self.package.get()
        let result = try Self.run(["lintian", "--fail-on", "error", "--tag-display-limit", "0", deb.path], timeout: 600)
        let errors = result.stdoutText.split(separator: "\n").filter { $0.hasPrefix("E: ") }
        #expect(result.status == 0 && errors.isEmpty, "lintian (\(result.status)):\n\(result.stdoutText)\(result.stderr)")
    }

    @Test("systemd-analyze verifies the unit, it has the hardening settings, and its exposure is OK")
    func systemdUnit() throws {
        let unpacked = try Self.unpacked.get()
        let unit = try String(contentsOf: unpacked.appendingPathComponent("lib/systemd/system/trafficmon.service"), encoding: .utf8)
        let settings = Set(unit.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) })
        for setting in [
            "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN", "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN",
            "DynamicUser=yes", "StateDirectory=trafficmon", "WorkingDirectory=%S/trafficmon", "ProtectSystem=strict",
            "NoNewPrivileges=yes", "EnvironmentFile=/etc/default/trafficmon", "ExecStart=/usr/bin/trafficmon serve",
        ] {
            #expect(settings.contains(setting), "the unit lacks \(setting)")
        }
        // The scratch root holds the package and the host's own units (sysinit.target and
        // the rest that the unit's dependencies name); the Documentation= man page is the
        // package's.
        let root = try TestProcess.temporaryDirectory("trafficmon-unit-root")
        defer { try? FileManager.default.removeItem(at: root) }
        let setup = try Self.run(["sh", "-c", "cp -a \"$1\"/. \"$2\" && mkdir -p \"$2/usr/lib/systemd\" && cp -r /lib/systemd/system \"$2/usr/lib/systemd/\"",
                                  "sh", unpacked.path, root.path])
        try #require(setup.status == 0, "\(setup.stderr)")
        let man = ["MANPATH": root.appendingPathComponent("usr/share/man").path]
        let verify = try Self.run(["systemd-analyze", "verify", "--root=\(root.path)", "trafficmon.service"], environment: man)
        #expect(verify.status == 0 && verify.stderr.isEmpty && verify.stdoutText.isEmpty,
                "systemd-analyze verify (\(verify.status)):\n\(verify.stdoutText)\(verify.stderr)")
        let security = try Self.run(["systemd-analyze", "security", "--offline=yes", "--root=\(root.path)", "trafficmon.service"])
        let exposure = security.stdoutText.firstMatch(of: #/Overall exposure level for trafficmon\.service: ([0-9.]+) (\w+)/#)
        let level = exposure.flatMap { Double($0.1) }
        #expect(level != nil && level! <= 2.0, "systemd-analyze security: \(exposure.map { "\($0.1) \($0.2)" } ?? security.stdoutText.suffix(500) + security.stderr)")
    }

    @Test("dpkg installs it into a scratch root; its binary reports on a capture; an upgrade keeps edited settings; remove keeps them, purge removes them")
    func installUpgradeRemovePurge() throws {
        let deb = try Self.package.get()
        let root = try TestProcess.temporaryDirectory("trafficmon-dpkg-root")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("var/lib/dpkg/info"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("var/lib/dpkg/updates"), withIntermediateDirectories: true)
        try #require(FileManager.default.createFile(atPath: root.appendingPathComponent("var/lib/dpkg/status").path, contents: Data()), "cannot make the scratch root's dpkg status file")
        // A scratch root has none of the libraries the package depends on: --force-depends.
        let dpkg = ["dpkg", "--root=\(root.path)", "--force-script-chrootless", "--force-depends", "--force-not-root"]
        func path(_ p: String) -> String { root.appendingPathComponent(p).path }

        let install = try Self.run(dpkg + ["-i", deb.path])
        try #require(install.status == 0, "dpkg -i: \(install.stdoutText)\(install.stderr)")
        let status = try Self.run(["dpkg-query", "--admindir=\(path("var/lib/dpkg"))", "-W", "-f=${Status} ${Version}", "trafficmon"])
        #expect(status.stdoutText.hasPrefix("install ok installed "), "\(status.stdoutText)")

        // The installed binary, on a capture file.
        let binary = path("usr/bin/trafficmon")
        let report = try Self.run([binary, "report", Self.fixture.path])
        #expect(report.status == 0, "report: \(report.stderr)")
        let first = try #require(report.stdout.split(separator: UInt8(ascii: "\n")).first, "report printed nothing")
        let record = try JSONSerialization.jsonObject(with: Data(first)) as? [String: Any]
        #expect((record?["packets"] as? Int) == 4 && (record?["bytes"] as? Int) == 411, "report: \(report.stdoutText.prefix(300))")

        // An upgrade (the same package again) keeps an edited conffile.
        let settings = path("etc/default/trafficmon")
        try (try String(contentsOfFile: settings, encoding: .utf8) + "TRAFFICMON_INTERFACE=eth9\n")
            .write(toFile: settings, atomically: true, encoding: .utf8)
        let upgrade = try Self.run(dpkg + ["--force-confold", "-i", deb.path])
        #expect(upgrade.status == 0, "dpkg -i again: \(upgrade.stdoutText)\(upgrade.stderr)")
        #expect(try String(contentsOfFile: settings, encoding: .utf8).hasSuffix("TRAFFICMON_INTERFACE=eth9\n"))

        let remove = try Self.run(dpkg + ["-r", "trafficmon"])
        #expect(remove.status == 0, "dpkg -r: \(remove.stderr)")
        #expect(!FileManager.default.fileExists(atPath: binary))
        #expect(!FileManager.default.fileExists(atPath: path("lib/systemd/system/trafficmon.service")))
        #expect(FileManager.default.fileExists(atPath: settings), "remove keeps /etc/default/trafficmon")
        try FileManager.default.createDirectory(atPath: path("var/lib/private/trafficmon"), withIntermediateDirectories: true)
        try #require(FileManager.default.createFile(atPath: path("var/lib/private/trafficmon/trafficmon.sqlite"), contents: Data("x".utf8)), "cannot make a database file for purge to remove")
        let purge = try Self.run(dpkg + ["-P", "trafficmon"])
        #expect(purge.status == 0, "dpkg -P: \(purge.stderr)")
        #expect(!FileManager.default.fileExists(atPath: settings), "purge removes /etc/default/trafficmon")
        #expect(!FileManager.default.fileExists(atPath: path("var/lib/private/trafficmon")), "purge removes the stored history")
    }

    @Test("every shared library the binary loads comes from a package in Depends (or what they depend on), and Depends is met here")
    func dependencies() throws {
        let deb = try Self.package.get()
        let binary = try Self.unpacked.get().appendingPathComponent("usr/bin/trafficmon").path
        let depends = try Self.run(["dpkg-deb", "--field", deb.path, "Depends"]).stdoutText
        let listed = Set(depends.split(separator: ",").map { String($0.trimmingCharacters(in: .whitespaces).prefix { $0 != " " && $0 != ":" }) })
        #expect(listed.isSuperset(of: ["libc6", "libpcap0.8", "libsqlite3-0"]), "Depends: \(depends)")

        // Direct needs (DT_NEEDED) come from packages in Depends themselves...
        let dynamic = try Self.run(["readelf", "-d", binary]).stdoutText
        let needed = Set(dynamic.matches(of: #/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/#).map { String($0.1) })
        // ... and everything ldd resolves (their own needs too) from Depends or their dependencies.
        let ldd = try Self.run(["ldd", binary])
        try #require(ldd.status == 0, "ldd: \(ldd.stderr)")
        #expect(!ldd.stdoutText.contains("not found"), "ldd:\n\(ldd.stdoutText)")
        var closure = listed
        var queue = Array(listed)
        while let name = queue.popLast() {
            let deps = try Self.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}", name]).stdoutText
            for alternative in deps.split(separator: ",") {
                for option in alternative.split(separator: "|") {
                    let dep = String(option.trimmingCharacters(in: .whitespaces).prefix { $0 != " " && $0 != ":" })
                    if !dep.isEmpty, closure.insert(dep).inserted { queue.append(dep) }
                }
            }
        }
        for line in ldd.stdoutText.split(separator: "\n") {
            let fields = line.trimmingCharacters(in: .whitespaces).split(separator: " ")
            guard let arrow = fields.firstIndex(of: "=>"), arrow + 1 < fields.count else {
                // linux-vdso has no file; the loader is listed by its path.
                if let first = fields.first, first.hasPrefix("/") {
                    #expect(try closure.contains(Self.owner(of: String(first)) ?? "?"), "\(first): not from a package in Depends")
                }
                continue
            }
            let library = String(fields[0])
            let file = String(fields[arrow + 1])
            let owner = try Self.owner(of: file)
            #expect(owner != nil, "\(file) (\(library)) belongs to no Debian package")
            if let owner {
                #expect(closure.contains(owner), "\(file) belongs to \(owner), which is not in Depends (\(depends)) nor what they depend on")
                if needed.contains(library) {
                    #expect(listed.contains(owner), "the binary needs \(library) directly; its package \(owner) is not in Depends (\(depends))")
                }
            }
        }
        // Depends as written is met by this Debian's packages (apt resolves it offline).
        let apt = try Self.run(["apt-get", "install", "--simulate", "--no-install-recommends", deb.path])
        #expect(apt.status == 0 && apt.stdoutText.contains("Inst trafficmon") && !apt.stdoutText.contains("Inst lib"),
                "apt-get install --simulate:\n\(apt.stdoutText)\(apt.stderr)")
    }

    @Test("the manual page renders without warnings and documents every command")
    func manualPage() throws {
        let page = try Self.unpacked.get().appendingPathComponent("usr/share/man/man1/trafficmon.1.gz").path
        let man = try Self.run(["man", "--warnings", "-l", page], environment: ["MANWIDTH": "100", "PAGER": "cat", "MAN_KEEP_FORMATTING": ""])
        #expect(man.status == 0 && man.stderr.isEmpty, "man -l (\(man.status)): \(man.stderr)")
        let text = man.stdoutText.replacingOccurrences(of: "\u{2010}\n", with: "").replacingOccurrences(of: "-\n", with: "-")
        for word in ["TRAFFICMON(1)", "serve", "report", "interfaces", "--interface", "--local-net", "--read", "--version"] {
            #expect(text.contains(word), "the manual page lacks \(word)")
        }
    }

    @Test("the completions load: bash and fish complete commands and flags, zsh parses its file")
    func completions() throws {
        let tree = try Self.unpacked.get()
        let bash = tree.appendingPathComponent("usr/share/bash-completion/completions/trafficmon").path
        func complete(_ line: String) throws -> [String] {
            let script = """
                source "$1"
                COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}
                read -r -a COMP_WORDS <<<"$COMP_LINE"; [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
                COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
                _trafficmon trafficmon "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
                printf '%s\\n' "${COMPREPLY[@]}"
                """
            let result = try Self.run(["bash", "-c", script, "bash", bash, line])
            #expect(result.status == 0 && result.stderr.isEmpty, "bash completion of '\(line)': \(result.stderr)")
            return result.stdoutText.split(separator: "\n").map(String.init)
        }
        #expect(try complete("trafficmon se") == ["serve"])
        #expect(try Set(complete("trafficmon ")).isSuperset(of: ["serve", "report", "interfaces"]))
        #expect(try complete("trafficmon serve --inter").contains("--interface"))
        #expect(try complete("trafficmon report --for").contains("--format"))

        let fish = tree.appendingPathComponent("usr/share/fish/vendor_completions.d/trafficmon.fish").path
        let fishResult = try Self.run(["fish", "--no-config", "-c", "source $argv[1]; complete -C 'trafficmon serve --inter'", fish])
        #expect(fishResult.status == 0 && fishResult.stdoutText.contains("--interface"), "fish: \(fishResult.stdoutText)\(fishResult.stderr)")

        let zsh = tree.appendingPathComponent("usr/share/zsh/vendor-completions/_trafficmon").path
        let zshResult = try Self.run(["zsh", "-n", zsh])
        #expect(zshResult.status == 0 && zshResult.stderr.isEmpty, "zsh -n: \(zshResult.stderr)")
    }

    @Test("/etc/default/trafficmon names only serve flags, and serve refuses to start with nothing configured there")
    func settingsFile() throws {
        let tree = try Self.unpacked.get()
        let settings = try String(contentsOf: tree.appendingPathComponent("etc/default/trafficmon"), encoding: .utf8)
        let binary = tree.appendingPathComponent("usr/bin/trafficmon").path
        let help = try Self.run([binary, "serve", "--help"]).stdoutText
        let flags = Set(help.matches(of: #/--([a-z][a-z-]+)/#).map { String($0.1) })
        let named = Set(settings.matches(of: #/TRAFFICMON_([A-Z_]+)=/#).map { $0.1.lowercased().replacingOccurrences(of: "_", with: "-") })
        #expect(named.subtracting(flags).isEmpty, "not serve flags: \(named.subtracting(flags))")
        // Every flag that makes sense for the service is there (--user: it already runs unprivileged).
        let missing = flags.subtracting(named).subtracting(["help", "version", "user"])
        #expect(missing.isEmpty, "serve flags /etc/default/trafficmon does not mention: \(missing)")
        #expect(!settings.split(separator: "\n").contains { $0.hasPrefix("TRAFFICMON_") }, "the shipped file sets something")

        // What systemd does: the file's variables (none set), then ExecStart.
        let started = try Self.run(["sh", "-c", "set -a; . \"$1\"; exec \"$2\" serve", "sh",
                                    tree.appendingPathComponent("etc/default/trafficmon").path, binary],
                                   environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TRAFFICMON_") }, timeout: 30)
        #expect(started.status == 64, "serve with nothing configured exited \(started.status): \(started.stderr)")
        #expect(started.stderr.contains("--interface"), "\(started.stderr)")
    }

    @Test("the English-only ICU data the release binary carries formats English as the full data does")
    func englishICUData() throws {
        _ = try Self.package.get()
        let object = Self.repository.appendingPathComponent(".build/small-icu/icudata.o")
        let symbols = try Self.run(["nm", object.path]).stdoutText
        let symbol = try #require(symbols.firstMatch(of: #/R trafficmon_(icudt[0-9]+_dat)/#).map { String($0.1) }, "no ICU data in \(object.path)")
        let dir = try TestProcess.temporaryDirectory("trafficmon-icu")
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = dir.appendingPathComponent("formats.swift")
        try """
            import Foundation
            let date = Date(timeIntervalSince1970: 1_700_000_000)
            for id in ["en_US", "en_GB", "en_US_POSIX", "de_DE"] {
                let dates = DateFormatter(); dates.locale = Locale(identifier: id); dates.dateStyle = .full; dates.timeStyle = .long
                dates.timeZone = TimeZone(identifier: "Europe/Paris")
                let money = NumberFormatter(); money.locale = Locale(identifier: id); money.numberStyle = .currency
                print(id, "|", dates.string(from: date), "|", money.string(from: 1234.5) ?? "nil")
            }
            print("straße".uppercased(), "a".compare("B", options: .caseInsensitive).rawValue, ["b", "A", "ä"].sorted { $0.localizedStandardCompare($1) == .orderedAscending })
            """.write(to: source, atomically: true, encoding: .utf8)
        func build(_ name: String, _ extra: [String]) throws -> [String] {
            let binary = dir.appendingPathComponent(name).path
            let compiled = try Self.run(["swiftc", "-static-stdlib", source.path, "-o", binary] + extra, timeout: 600)
            try #require(compiled.status == 0, "swiftc: \(compiled.stderr)")
            let output = try Self.run([binary])
            try #require(output.status == 0, "\(name): \(output.stderr)")
            return output.stdoutText.split(separator: "\n").map(String.init)
        }
        let full = try build("full", [])
        let small = try build("small", ["-Xlinker", "--defsym=\(symbol)=trafficmon_\(symbol)", "-Xlinker", object.path])
        #expect(full.filter { $0.hasPrefix("en") } == small.filter { $0.hasPrefix("en") }, "full:\n\(full)\nsmall:\n\(small)")
        #expect(full.last == small.last)
        // German is not in the copy: it falls back to the root locale's (English) formats.
        #expect(full.first { $0.hasPrefix("de_DE") }?.contains("Dienstag") == true)
        #expect(small.first { $0.hasPrefix("de_DE") }?.contains("Tuesday") == true, "\(small)")
    }

    // MARK: - Helpers

    /// Runs a program (looked up on PATH) with this process's environment plus `environment`.
    static func run(_ command: [String], environment: [String: String] = [:], timeout: TimeInterval = 300) throws -> TestProcess.Result {
        let program = TestProcess.which(command[0]) ?? command[0]
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        return try TestProcess.run(URL(fileURLWithPath: program), Array(command.dropFirst()), environment: env, timeout: timeout)
    }

    /// The Debian package that owns `file`, through the /usr merge (/lib is /usr/lib here).
    static func owner(of file: String) throws -> String? {
        let real = (try? FileManager.default.destinationOfSymbolicLink(atPath: file)).map {
            $0.hasPrefix("/") ? $0 : URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent($0).path
        }
        var candidates = [file] + (real.map { [$0] } ?? [])
        for path in candidates {
            if path.hasPrefix("/usr/") { candidates.append(String(path.dropFirst(4))) } else { candidates.append("/usr" + path) }
        }
        for path in candidates {
            let result = try run(["dpkg-query", "-S", path])
            if result.status == 0, let line = result.stdoutText.split(separator: "\n").first,
               let colon = line.range(of: ": ") {
                return String(line[..<colon.lowerBound].prefix { $0 != ":" && $0 != "," })
            }
        }
        return nil
    }
}
