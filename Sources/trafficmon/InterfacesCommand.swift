import ArgumentParser
import TrafficCapture

/// `trafficmon interfaces`: the capture devices and their addresses.
struct InterfacesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "interfaces",
        abstract: "List capture interfaces with their addresses.")

    func run() throws {
        let devices: [InterfaceInfo]
        do {
            devices = try InterfaceInfo.list()
        } catch {
            throw UserFacingError(error)
        }
        if devices.isEmpty {
            print("no capture interfaces visible (capturing may need root or cap_net_raw,cap_net_admin)")
            return
        }
        for device in devices {
            var flags: [String] = []
            if device.isUp { flags.append("up") }
            if device.isRunning { flags.append("running") }
            if device.isLoopback { flags.append("loopback") }
            let addresses = device.addresses.map(\.description).joined(separator: ", ")
            print("\(device.name)\t[\(flags.joined(separator: ","))]\t\(addresses.isEmpty ? "-" : addresses)"
                + (device.description.map { "\t\($0)" } ?? ""))
        }
    }
}
