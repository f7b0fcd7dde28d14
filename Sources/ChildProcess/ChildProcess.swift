import CLinux
import Foundation
import Glibc
import NIOConcurrencyHelpers

/// A child process started with `posix_spawn`: the one way tests, the bench tool and the trace
/// reader start programs.
///
/// Why not Foundation's `Process`: on Linux its `run()` reads each `/proc/self/fd` entry with a
/// 256-byte copy of `d_name` past the end of glibc's readdir buffer, and crashes when the next page
/// is unmapped (swift-corelibs-foundation PR #5472, not in Swift 6.3.1). A test process with many
/// descriptors open met it about one full run in five. Why not swift-subprocess: its processes
/// live for the length of a closure, and a test's daemon outlives the call that starts it (it is
/// stopped, frozen, killed and restarted across a test); this is what such a test needs, small.
package final class ChildProcess: Sendable {
    /// Where the child's standard output or error goes.
    package enum Output: Sendable {
        /// Collected; read with `output` once the child has exited.
        case collect
        /// Appended to this file.
        case file(String)
        /// Thrown away (`/dev/null`).
        case discard
    }

    /// Why a child could not be started.
    package struct SpawnError: Error, CustomStringConvertible {
        package let description: String
    }

    package let pid: pid_t
    private let exit = NIOLockedValueBox<(status: Int32?, waiters: [CheckedContinuation<Int32, Never>])>((nil, []))
    /// Left once the child has exited and its outputs are read (for `waitUntilExit`).
    private let exited = DispatchGroup()
    private let collected: [Int32: NIOLockedValueBox<Data>]

    /// Starts `executable` with `arguments` and exactly `environment`; stdin is /dev/null. The
    /// child gets no other descriptor of this process.
    package init(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String],
        stdout: Output,
        stderr: Output
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var readEnds: [Int32: Int32] = [:]
        var writeEnds: [Int32] = []
        defer { for fd in writeEnds { close(fd) } }
        for (target, output) in [(Int32(1), stdout), (Int32(2), stderr)] {
            switch output {
            case .collect:
                var ends: [Int32] = [0, 0]
                // Children started here close every descriptor above 2 (below), so the pipe's
                // ends reach no other child; close-on-exec covers anything else that forks.
                guard pipe(&ends) == 0 else { throw SpawnError(description: "cannot make a pipe for \(executable)") }
                for fd in ends { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
                readEnds[target] = ends[0]
                writeEnds.append(ends[1])
                posix_spawn_file_actions_adddup2(&actions, ends[1], target)
            case .file(let path):
                posix_spawn_file_actions_addopen(&actions, target, path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
            case .discard:
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0)
            }
        }
        posix_spawn_file_actions_addclosefrom_np(&actions, 3)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard result == 0 else {
            for fd in readEnds.values { close(fd) }
            throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        self.pid = pid
        let spawned = pid
        var collected: [Int32: NIOLockedValueBox<Data>] = [:]
        for target in readEnds.keys { collected[target] = NIOLockedValueBox(Data()) }
        self.collected = collected
        // One thread per pipe reads it to its end, and one waits for the exit: the concurrency
        // pool's threads are never blocked.
        let drained = DispatchGroup()
        for (target, fd) in readEnds {
            let box = collected[target]!
            drained.enter()
            Thread.detachNewThread {
                let data = FileHandle(fileDescriptor: fd, closeOnDealloc: true).readDataToEndOfFile()
                box.withLockedValue { $0 = data }
                drained.leave()
            }
        }
        let exit = self.exit
        let exited = self.exited
        exited.enter()
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(spawned, &status, 0) < 0, errno == EINTR {}
            drained.wait()
            // Exited: its code; killed: the signal (as Foundation's `terminationStatus` says).
            let code = status & 0x7F == 0 ? (status >> 8) & 0xFF : status & 0x7F
            let waiters = exit.withLockedValue { state in
                state.status = code
                defer { state.waiters = [] }
                return state.waiters
            }
            exited.leave()
            for waiter in waiters { waiter.resume(returning: code) }
        }
    }

    /// Blocks the calling thread until the child exits (for synchronous callers, never on the
    /// concurrency pool); its exit code, or the signal that ended it.
    package func waitUntilExit() -> Int32 {
        exited.wait()
        return exit.withLockedValue { $0.status ?? -1 }
    }

    /// Waits for the child to exit; its exit code, or the signal that ended it.
    package func status() async -> Int32 {
        await withCheckedContinuation { continuation in
            let known = exit.withLockedValue { state -> Int32? in
                if let status = state.status { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let known { continuation.resume(returning: known) }
        }
    }

    /// Whether the child has not been seen to exit yet.
    package var isRunning: Bool { exit.withLockedValue { $0.status == nil } }

    /// What the child wrote to an output given as `.collect` (1 or 2), once it has exited.
    package func output(_ descriptor: Int32) -> String {
        String(decoding: outputBytes(descriptor), as: UTF8.self)
    }

    /// The same, as bytes.
    package func outputBytes(_ descriptor: Int32) -> Data {
        collected[descriptor]?.withLockedValue { $0 } ?? Data()
    }

    /// Sends `signal` to the child.
    package func signal(_ signal: Int32) {
        kill(pid, signal)
    }
}
