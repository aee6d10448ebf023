import Foundation

/// A fresh directory under /tmp for one test, removed when the value is released.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(_ label: String = "test") throws {
        var template = Array("/tmp/swunison-\(label).XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw NSError(domain: "TemporaryDirectory", code: Int(errno))
        }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// `path/relative`.
    public func appending(_ relative: String) -> String { path + "/" + relative }
}
