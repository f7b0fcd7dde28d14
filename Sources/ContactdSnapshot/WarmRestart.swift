import ContactdCore
import Glibc
import Logging
import NIOConcurrencyHelpers
import Systemd

/// Keeps the cache across restarts: restores it before `READY=1` from systemd's fd store (or
/// `--snapshot-file`), and writes snapshots there every `--snapshot-interval` and on stop.
///
/// Under systemd the snapshot is a sealed memfd named `cache` in the service's fd store
/// (`FileDescriptorStoreMax=` in the unit): systemd keeps it across `systemctl restart`, a crash
/// and the watchdog's kill, and passes it back in `LISTEN_FDS`. A file, if configured, also
/// survives `systemctl stop` and reboots.
package final class WarmRestart: Sendable {
    /// The name the snapshot has in the fd store (`FDNAME=`, `LISTEN_FDNAMES`).
    package static let storeName = "cache"

    private let cache: ContactCache
    /// Whom the snapshot's entries came from: a snapshot taken for another API is not restored.
    private let api: String
    private let file: String?
    /// Whether systemd is listening (`NOTIFY_SOCKET`): the fd store is written only then.
    private let toStore: Bool
    private let keepRestoredInStore: Bool
    private let limits: CacheSnapshot.Limits
    private let notifier: SystemdNotifier
    private let logger: Logger
    /// Whether the last write failed: a failure is a warning once, then debug until one works.
    private let lastWriteFailed = NIOLockedValueBox(false)
    /// When the last snapshot was written, for `contactd_snapshot_age_seconds`.
    private let lastWritten = NIOLockedValueBox<ContinuousClock.Instant?>(nil)

    /// - Parameters:
    ///   - api: whom the entries come from (the API's URL, or `demo`): a snapshot taken for
    ///     another API is not restored.
    ///   - file: `--snapshot-file`, if any.
    ///   - interval: `--snapshot-interval`; zero: a snapshot only on stop.
    ///   - limits: the longest an entry may have been cached (contacts and not-found answers).
    package init(
        cache: ContactCache,
        api: String,
        file: String?,
        interval: Duration,
        limits: CacheSnapshot.Limits,
        environment: [String: String],
        notifier: SystemdNotifier,
        logger: Logger
    ) {
        self.cache = cache
        self.api = api
        self.file = file
        self.toStore = environment["NOTIFY_SOCKET"] != nil
        // With snapshots only on stop, the restored one is released at once (systemd's copy
        // holds as much memory as the cache); otherwise it stays until the next one replaces it,
        // so a crash before then still finds it.
        self.keepRestoredInStore = interval > .zero
        self.limits = limits
        self.notifier = notifier
        self.logger = logger
    }

    // MARK: Restoring

    /// Restores the cache from the first usable snapshot: the descriptors systemd passed back as
    /// `cache` (closed here), then the file. A snapshot that cannot be used is skipped with one log
    /// line and, in the fd store, removed so it does not come back.
    package func restore(storedDescriptors: [Int32]) {
        var restored = false
        for fd in storedDescriptors {
            defer { close(fd) }
            if restored { continue }
            restored = restore(from: fd, source: "systemd's fd store")
            if !restored || !keepRestoredInStore { notifier.removeStored(name: Self.storeName) }
        }
        if !restored, let file {
            switch SnapshotFiles.openTrusted(file) {
            case .success(let fd)?:
                defer { close(fd) }
                _ = restore(from: fd, source: file)
            case .failure(let problem)?:
                logger.warning(
                    "cache snapshot not restored: the file is not one contactd trusts",
                    metadata: ["snapshot.source": "\(file)", "reason": "\(problem.description)"]
                )
            case nil:
                break
            }
        }
    }

    private func restore(from fd: Int32, source: String) -> Bool {
        let started = ContinuousClock.now
        let mapping: SnapshotFiles.Mapping
        switch SnapshotFiles.map(fd) {
        case .success(let mapped): mapping = mapped
        case .failure(let failure):
            logger.warning(
                "cache snapshot not restored",
                metadata: ["snapshot.source": "\(source)", "reason": "\(failure.description)"]
            )
            return false
        }
        defer { mapping.unmap() }
        do {
            let restored = try CacheSnapshot.restore(
                mapping.bytes,
                into: cache,
                api: api,
                now: .now(),
                limits: limits
            )
            logger.notice(
                "cache restored from snapshot",
                metadata: [
                    "snapshot.source": "\(source)",
                    "snapshot.entries": "\(restored.entries)",
                    "snapshot.expired": "\(restored.expired)",
                    "snapshot.age": "\((restored.elapsed * 1000).rounded() / 1000)s",
                    "snapshot.bytes": "\(mapping.bytes.count)",
                    "duration_ms": "\(milliseconds(since: started))",
                ]
            )
            return true
        } catch {
            logger.warning(
                "cache snapshot ignored: \(error.description)",
                metadata: ["snapshot.source": "\(source)"]
            )
            return false
        }
    }

    // MARK: Writing

    /// Writes a snapshot to the fd store (under systemd) and the file (if configured).
    ///
    /// - Parameter final: the one on stop, logged as a notice; the periodic ones are debug lines.
    func save(final: Bool) {
        guard toStore || file != nil else { return }
        let started = ContinuousClock.now
        let time = SnapshotTime.now()
        let write = { (fd: Int32) throws(CacheSnapshot.WriteError) -> CacheSnapshot.Written in
            try CacheSnapshot.write(self.cache, api: self.api, time: time, to: fd)
        }
        var written = CacheSnapshot.Written()
        var destinations: [String] = []
        var memory: (fd: Int32, written: CacheSnapshot.Written)?
        defer { if let memory { close(memory.fd) } }
        do {
            if toStore {
                let sealed = try SnapshotFiles.sealedMemory(write)
                memory = sealed
                // Two messages: a store keeps every descriptor sent under a name, so the old one
                // goes first (FileDescriptorStoreMax=1 has room for one).
                notifier.removeStored(name: Self.storeName)
                notifier.store(fileDescriptor: sealed.fd, name: Self.storeName)
                written = sealed.written
                destinations.append("systemd's fd store in \(milliseconds(since: started)) ms")
            }
            if let file {
                let fileStarted = ContinuousClock.now
                // The cache is read once: with a memfd written, the file gets its bytes.
                written = try SnapshotFiles.writeFile(file, memory.map { SnapshotFiles.copying($0) } ?? write)
                destinations.append("\(file) in \(milliseconds(since: fileStarted)) ms")
            }
        } catch {
            let firstFailure = lastWriteFailed.withLockedValue { failed in
                defer { failed = true }
                return !failed
            }
            logger.log(
                level: final || firstFailure ? .warning : .debug,
                "cache snapshot not written: \(error.description)"
            )
            return
        }
        lastWritten.withLockedValue { $0 = .now }
        let recovered = lastWriteFailed.withLockedValue { failed in
            defer { failed = false }
            return failed
        }
        logger.log(
            level: final || recovered ? .notice : .debug,
            "cache snapshot written",
            metadata: [
                "snapshot.destination": "\(destinations.joined(separator: ", "))",
                "snapshot.entries": "\(written.entries)",
                "snapshot.bytes": "\(written.bytes)",
                "duration_ms": "\(milliseconds(since: started))",
            ]
        )
    }

    /// Whether snapshots are written at all (under systemd, or to `--snapshot-file`).
    package var writes: Bool { toStore || file != nil }

    /// Seconds since the last snapshot was written; `nil` before the first.
    package var secondsSinceLastWrite: Double? {
        lastWritten.withLockedValue { $0 }.map { (ContinuousClock.now - $0).seconds }
    }

    private func milliseconds(since start: ContinuousClock.Instant) -> String {
        let elapsed = ContinuousClock.now - start
        return String(Double(elapsed.nanoseconds / 10_000) / 100)
    }
}
