import CLinux
import Glibc
import PlainErrors

/// The descriptors and files a snapshot is written to and read from: a sealed memfd for
/// systemd's fd store, a file written whole and renamed into place, and read-only mappings.
enum SnapshotFiles {
    /// A sealed memfd holding what `write` puts in it: once sealed nobody, this process included,
    /// can change it, so the copy systemd keeps is the one that was written.
    static func sealedMemory(
        _ write: (Int32) throws(CacheSnapshot.WriteError) -> CacheSnapshot.Written
    ) throws(CacheSnapshot.WriteError) -> (fd: Int32, written: CacheSnapshot.Written) {
        let fd = contactd_memfd_create("contactd-cache")
        guard fd >= 0 else {
            throw CacheSnapshot.WriteError(description: "could not create a memory file: \(ErrnoText.plain(errno))")
        }
        do throws(CacheSnapshot.WriteError) {
            let written = try write(fd)
            guard contactd_seal_memfd(fd) == 0 else {
                throw CacheSnapshot.WriteError(description: "could not seal the memory file: \(ErrnoText.plain(errno))")
            }
            return (fd, written)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Writes a file at `path` with mode 0600 through a temporary file in the same directory,
    /// flushed to disk and renamed over `path`: a crash leaves the old snapshot or the new one,
    /// never half of one.
    static func writeFile(
        _ path: String,
        _ write: (Int32) throws(CacheSnapshot.WriteError) -> CacheSnapshot.Written
    ) throws(CacheSnapshot.WriteError) -> CacheSnapshot.Written {
        let temporary = "\(path).\(getpid()).tmp"
        // A leftover of this pid's (a crash) goes first; then the file must be new: O_EXCL never
        // follows a link or opens what someone else put there.
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            throw CacheSnapshot.WriteError(description: "could not create \(temporary): \(ErrnoText.plain(errno))")
        }
        do throws(CacheSnapshot.WriteError) {
            let written = try write(fd)
            guard fchmod(fd, 0o600) == 0, fdatasync(fd) == 0 else {
                throw CacheSnapshot.WriteError(description: "could not write \(temporary): \(ErrnoText.plain(errno))")
            }
            close(fd)
            guard rename(temporary, path) == 0 else {
                throw CacheSnapshot.WriteError(
                    description: "could not rename \(temporary) to \(path): \(ErrnoText.plain(errno))"
                )
            }
            return written
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
    }

    /// A writer that copies the snapshot already in `memory` (a sealed memfd) instead of reading
    /// the cache again.
    static func copying(
        _ memory: (fd: Int32, written: CacheSnapshot.Written)
    ) -> (Int32) throws(CacheSnapshot.WriteError) -> CacheSnapshot.Written {
        { (fd: Int32) throws(CacheSnapshot.WriteError) -> CacheSnapshot.Written in
            let mapping: Mapping
            switch map(memory.fd) {
            case .success(let mapped): mapping = mapped
            // Reading back its own copy failed: the copy cannot be written.
            case .failure(let failure): throw CacheSnapshot.WriteError(description: failure.description)
            }
            defer { mapping.unmap() }
            if let failure = CacheSnapshot.writeAll(mapping.bytes, to: fd, at: 0) { throw failure }
            return memory.written
        }
    }

    /// Opens `path` to read a snapshot from it, if it is one this daemon may trust: a regular file
    /// (not a FIFO, which would block the start, nor a device or a link), owned by this user, that
    /// nobody else may write. `nil` with no reason: there is no file.
    static func openTrusted(_ path: String) -> Result<Int32, CacheSnapshot.ReadError>? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            return .failure(.init(description: "could not open it: \(ErrnoText.plain(errno))"))
        }
        var status = stat()
        let problem: String?
        if fstat(fd, &status) != 0 {
            problem = "could not read what it is: \(ErrnoText.plain(errno))"
        } else if status.st_mode & S_IFMT != S_IFREG {
            problem = "it is not a regular file"
        } else if status.st_uid != geteuid() {
            problem = "it belongs to user \(status.st_uid), not to the user contactd runs as (\(geteuid()))"
        } else if status.st_mode & 0o022 != 0 {
            problem = "others may write to it (mode \(String(status.st_mode & 0o777, radix: 8)))"
        } else {
            problem = nil
        }
        if let problem {
            close(fd)
            return .failure(.init(description: problem))
        }
        return .success(fd)
    }

    /// A file's bytes mapped read-only; `unmap` when done.
    struct Mapping {
        let bytes: UnsafeRawBufferPointer

        func unmap() {
            if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
        }
    }

    /// Maps `fd` (a file or memfd) read-only. An empty file maps to no bytes.
    static func map(_ fd: Int32) -> Result<Mapping, CacheSnapshot.ReadError> {
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            return .failure(.init(description: "could not read its size: \(ErrnoText.plain(errno))"))
        }
        guard status.st_size > 0 else { return .success(Mapping(bytes: UnsafeRawBufferPointer(start: nil, count: 0))) }
        let size = Int(status.st_size)
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            return .failure(.init(description: "could not map it: \(ErrnoText.plain(errno))"))
        }
        return .success(Mapping(bytes: UnsafeRawBufferPointer(start: base, count: size)))
    }
}
