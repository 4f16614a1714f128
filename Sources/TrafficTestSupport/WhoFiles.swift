import Foundation

extension WhoFixtures {
    /// A temporary directory of a test holding `traffic` as a capture, the networks file
    /// of the layout's blocks and the ASN and country databases.
    ///
    /// ```swift
    /// let f = try WhoFixtures.Files(SyntheticTraffic(packets: 20_000, clients: 400, seconds: 20, seed: 51))
    /// defer { f.remove() }
    /// let result = try trafficmon(["report", f.capture.path] + f.all)
    /// ```
    public struct Files {
        public let dir: URL
        public let capture: URL
        public let networks: URL
        public let asn: URL
        public let country: URL
        public let traffic: SyntheticTraffic

        /// Writes the capture with frames cut to `snapLength` bytes, and the networks file of
        /// `layout`'s blocks.
        public init(_ traffic: SyntheticTraffic, layout: SyntheticTraffic.Layout = .servers, snapLength: Int = 262_144) throws {
            dir = try TestProcess.temporaryDirectory()
            self.traffic = traffic
            capture = dir.appendingPathComponent("t.pcap")
            try traffic.pcap(snapLength: snapLength).write(to: capture)
            networks = dir.appendingPathComponent("networks.yaml")
            try networksYAML(networkBlocks(layout)).write(to: networks, atomically: true, encoding: .utf8)
            asn = dir.appendingPathComponent("asn.mmdb")
            try asnDatabase().write(to: asn)
            country = dir.appendingPathComponent("country.mmdb")
            try countryDatabase().write(to: country)
        }

        /// The options of `trafficmon report` and `serve` that read the three files.
        public var all: [String] {
            ["--networks", networks.path, "--asn-db", asn.path, "--country-db", country.path]
        }

        /// Writes `text` to the file `name` in the directory; its path.
        public func write(_ text: String, _ name: String) throws -> String {
            let url = dir.appendingPathComponent(name)
            try text.write(to: url, atomically: true, encoding: .utf8)
            return url.path
        }

        public func remove() {
            try? FileManager.default.removeItem(at: dir)
        }
    }
}
