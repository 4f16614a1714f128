/// The one time limit of the tests that wait on a server, a child process, a socket or a
/// browser. It is there to end a hang, never to judge speed: `swift test` starts the tests
/// of every target at once, in one process, so on a 2-core machine a test's clock runs
/// while the whole parallel pass (about two minutes) shares the cores, and a test that
/// alone takes a few seconds can show over a minute.
///
/// ```swift
/// @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func aSlowThingEnds() async throws { ... }
/// ```
public enum TestTimeLimit {
    /// Minutes: over twice the longest parallel pass CI has shown (113 s).
    public static let minutes = 5
}
