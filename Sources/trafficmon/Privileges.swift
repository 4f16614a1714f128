import Foundation

/// Dropping root after the capture is open, as tcpdump's `-Z` does: the capture
/// socket stays usable, everything else runs as an unprivileged user.
enum Privileges {
    static func drop(to name: String) throws {
        guard let entry = getpwnam(name) else {
            throw UserFacingError("--user \(name): no such user")
        }
        let uid = entry.pointee.pw_uid
        let gid = entry.pointee.pw_gid
        if getuid() == uid && geteuid() == uid { return }
        guard geteuid() == 0 else {
            throw UserFacingError("--user \(name) needs trafficmon to start as root")
        }
        guard initgroups(name, gid) == 0, setgid(gid) == 0, setuid(uid) == 0 else {
            throw UserFacingError("--user \(name): cannot switch to it (\(String(cString: strerror(errno))))")
        }
        // Make sure there is no way back.
        guard setuid(0) != 0, getuid() == uid, geteuid() == uid else {
            throw UserFacingError("--user \(name): root privileges could not be given up")
        }
    }
}
