import Dispatch
import Glibc

/// Signals in the long-lived modes (watch, repeat): SIGTERM and SIGINT ask the run to stop
/// (operations in flight finish, what succeeded is committed, exit 0); a second SIGINT ends
/// the process at once (a person pressing Ctrl-C again); SIGHUP reopens the log file (after
/// logrotate). Without them a signal would kill the process in mid-operation, which is safe
/// (Invariant 1, 4) but loses the work in flight.
final class SignalHandlers: Sendable {
    // The sources must live as long as the handlers are wanted.
    nonisolated(unsafe) private var sources: [any DispatchSourceSignal] = []

    init(stop: @escaping @Sendable () -> Void, reopenLog: @escaping @Sendable () -> Void) {
        let queue = DispatchQueue(label: "swunison.signals")
        let interrupted = InterruptCount()
        func handle(_ signal: Int32, _ action: @escaping @Sendable () -> Void) {
            Glibc.signal(signal, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signal, queue: queue)
            source.setEventHandler { @Sendable in action() }
            source.resume()
            sources.append(source)
        }
        handle(SIGTERM) { stop() }
        handle(SIGINT) {
            if interrupted.increment() > 1 { _exit(130) }
            stop()
        }
        handle(SIGHUP) { reopenLog() }
    }
}

/// How many SIGINTs arrived (touched only on the signal queue).
private final class InterruptCount: @unchecked Sendable {
    private var count = 0
    func increment() -> Int { count += 1; return count }
}
