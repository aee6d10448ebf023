import Foundation
import Testing
@testable import SwunisonStorage

@Suite struct ArchiveLockTests {
    @Test func secondAcquireIsRefusedUntilReleased() throws {
        let dir = try TempDir()
        let archive = dir.file("ar.db")
        let lock = try ArchiveLock.acquire(path: archive)
        #expect(lock.path == archive + ".lock")
        #expect(try String(contentsOfFile: lock.path, encoding: .utf8) == "\(getpid())\n")

        // flock locks belong to open files, so a second open in this process conflicts too.
        let error = storageError { _ = try ArchiveLock.acquire(path: archive) }
        #expect(error?.reason == .locked(pid: getpid()))
        #expect(error?.description == "another swunison run (pid \(getpid())) holds the lock on \(archive).lock; wait for it to finish")

        lock.release()
        #expect(!lock.isHeld)
        lock.release()  // harmless
        let again = try ArchiveLock.acquire(path: archive)
        #expect(again.isHeld)
    }

    @Test func lockIsReleasedWhenTheObjectGoesAway() throws {
        let dir = try TempDir()
        let archive = dir.file("ar.db")
        do { _ = try ArchiveLock.acquire(path: archive) }
        _ = try ArchiveLock.acquire(path: archive)
    }

    @Test func aHolderKilledWithSIGKILLDoesNotLeaveTheLockStuck() throws {
        let dir = try TempDir()
        let archive = dir.file("ar.db")
        let lockFile = ArchiveLock.lockPath(forArchive: archive)
        // A child holds the flock on the same file, writes its pid the same way, then sleeps.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sh")
        child.arguments = ["-c", #"exec 9<>"$1"; /usr/bin/flock -x 9; echo $$ >&9; echo ready; exec sleep 60"#, "sh", lockFile]
        let output = Pipe()
        child.standardOutput = output
        try child.run()
        defer { if child.isRunning { kill(child.processIdentifier, SIGKILL); child.waitUntilExit() } }
        let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        #expect(line == "ready\n")

        let error = storageError { _ = try ArchiveLock.acquire(path: archive) }
        #expect(error?.reason == .locked(pid: child.processIdentifier))

        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        #expect(child.terminationReason == .uncaughtSignal)

        let lock = try ArchiveLock.acquire(path: archive)
        #expect(lock.isHeld)
        #expect(try String(contentsOfFile: lockFile, encoding: .utf8) == "\(getpid())\n")
    }
}
