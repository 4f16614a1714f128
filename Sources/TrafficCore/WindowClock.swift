/// The window coordinator's clock: which window is open, and when windows close. Windows
/// are tumbling and aligned to the Unix epoch; event time (a packet's timestamp) picks a
/// packet's window; a packet older than the open window goes into it, late; a closed
/// window never reopens. Files close windows as packet time passes them (`place`), live
/// captures on the wall clock (`advance`).
///
/// It counts nothing: the shards count, into the window it names.
///
/// ```swift
/// var clock = WindowClock(windowLength: 5_000_000_000)
/// let (closed, late) = clock.place(timestamp)   // when timestamp is outside clock.start..<clock.end
/// if let closed { emit(closed) }
/// shard.select(clock.start)
/// ```
public struct WindowClock: Sendable {
    public let windowLength: Int64
    public private(set) var isOpen = false
    /// The open window's start and end; `.max`/`.min` while none is open, so every time
    /// falls outside.
    public private(set) var start = Int64.max
    public private(set) var end = Int64.min
    /// The open window began after its start (a live capture started mid-window).
    private var openedMidWindow = false
    /// The latest time seen (packets, injects, the wall clock).
    public private(set) var latestTime: Int64 = .min
    /// The end of the last closed window: time before it belongs to closed windows.
    private var closedUntil: Int64 = .min

    public init(windowLength: Int64) {
        self.windowLength = max(1, windowLength)
    }

    /// Notes a time seen (for `latestTime`).
    public mutating func note(_ time: Int64) {
        if time > latestTime { latestTime = time }
    }

    /// Places a time outside the open window (the slow path of a packet's clock check):
    /// opens the first window, or closes the open one and opens the time's own, or finds
    /// the time late (older than the open window, or than a closed one: it goes into the
    /// open window). Returns the window it closed, and whether the time is late.
    public mutating func place(_ time: Int64) -> (closed: WindowFacts?, late: Bool) {
        note(time)
        if !isOpen {
            if time < closedUntil {
                open(containing: closedUntil, midWindow: false)
                return (nil, true)
            }
            open(containing: time, midWindow: false)
            return (nil, false)
        }
        if time >= end {
            let closed = close(partial: openedMidWindow)
            open(containing: time, midWindow: false)
            return (closed, false)
        }
        return (nil, time < start)
    }

    /// Closes every window that ended at or before `now` (nanoseconds). With `emitEmpty`
    /// the following window opens right away, so a quiet period still yields one (empty)
    /// window each, as a live capture must; the first window opens at `now`, marked
    /// partial. Returns the windows closed, oldest first.
    public mutating func advance(to now: Int64, emitEmpty: Bool) -> [WindowFacts] {
        note(now)
        guard isOpen else {
            if emitEmpty { open(containing: now, midWindow: true) }
            return []
        }
        var closed: [WindowFacts] = []
        while isOpen && end <= now {
            let next = end
            closed.append(close(partial: openedMidWindow))
            guard emitEmpty else { break }
            if closed.count >= 1000 || now - next >= 1000 * windowLength {
                // The clock jumped far ahead (suspend, clock step): resume at now.
                open(containing: now, midWindow: true)
                break
            }
            open(at: next, midWindow: false)
        }
        return closed
    }

    /// Closes the open window, marked partial: end of input, or shutdown.
    public mutating func finish() -> WindowFacts? {
        isOpen ? close(partial: true) : nil
    }

    /// The open window's facts so far (a look at it: partial).
    public var openFacts: WindowFacts? {
        isOpen ? WindowFacts(start: start, end: end, partial: true) : nil
    }

    private mutating func open(containing time: Int64, midWindow: Bool) {
        open(at: Timestamp.floorDiv(time, windowLength) * windowLength, midWindow: midWindow)
    }

    private mutating func open(at start: Int64, midWindow: Bool) {
        isOpen = true
        self.start = start
        end = start + windowLength
        openedMidWindow = midWindow
    }

    private mutating func close(partial: Bool) -> WindowFacts {
        let facts = WindowFacts(start: start, end: end, partial: partial)
        closedUntil = max(closedUntil, end)
        isOpen = false
        start = .max
        end = .min
        return facts
    }
}
