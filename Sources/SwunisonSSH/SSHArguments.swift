/// The subset of ssh(1)'s command line that Unison profiles put in `sshargs`, parsed into typed
/// values. Anything else is an error that names the option: an ignored `-o` could silently weaken
/// host checking or send the user to the wrong port.
public struct SSHArguments: Sendable, Hashable {
    public var port: Int?
    public var user: String?
    public var identityFiles: [String] = []
    public var compression: Bool?
    public var strictHostKeyChecking: StrictHostKeyChecking?
    public var knownHostsFile: String?
    public var connectTimeoutSeconds: Int?
    /// From `ServerAliveInterval`; 0 there means "off" and leaves this nil.
    public var keepaliveSeconds: Int?

    public init() {}

    /// Parses `sshargs` (shell-like quoting: '...', "...", backslash).
    /// - Throws: `SSHError.unsupportedSSHArgument` for an option outside the supported set,
    ///   `SSHError.invalidSSHArgument` for a missing or bad value.
    public static func parse(_ sshargs: String) throws(SSHError) -> SSHArguments {
        var result = SSHArguments()
        let words = try splitWords(sshargs)
        var index = 0
        func value(for flag: String, attached: Substring) throws(SSHError) -> String {
            if !attached.isEmpty { return String(attached) }
            index += 1
            guard index < words.count else {
                throw .invalidSSHArgument(argument: flag, sshargs: sshargs, message: "it needs a value")
            }
            return words[index]
        }
        while index < words.count {
            let word = words[index]
            guard word.hasPrefix("-"), word.count >= 2 else {
                throw .unsupportedSSHArgument(argument: word, sshargs: sshargs)
            }
            let flag = word.prefix(2)
            let attached = word.dropFirst(2)
            switch flag {
            case "-p":
                let text = try value(for: "-p", attached: attached)
                result.port = try parsePort(text, argument: "-p \(text)", sshargs: sshargs)
            case "-l":
                result.user = try value(for: "-l", attached: attached)
            case "-i":
                result.identityFiles.append(try value(for: "-i", attached: attached))
            case "-C" where attached.isEmpty:
                result.compression = true
            case "-o":
                let option = try value(for: "-o", attached: attached)
                try result.apply(option: option, sshargs: sshargs)
            default:
                throw .unsupportedSSHArgument(argument: word, sshargs: sshargs)
            }
            index += 1
        }
        return result
    }

    /// Applies these values over `options` (values set here win).
    public func apply(to options: inout SSHOptions) {
        options.identityFiles += identityFiles
        if let compression { options.compression = compression }
        if let strictHostKeyChecking { options.strictHostKeyChecking = strictHostKeyChecking }
        if let knownHostsFile { options.knownHostsFile = knownHostsFile }
        if let connectTimeoutSeconds { options.connectTimeoutSeconds = connectTimeoutSeconds }
        if let keepaliveSeconds { options.keepaliveSeconds = keepaliveSeconds }
    }

    /// Applies the user and port over `destination` (values set here win).
    public func apply(to destination: inout SSHDestination) {
        if let user { destination.user = user }
        if let port { destination.port = port }
    }

    /// One `-o` value: `Key=Value`, `Key Value` or `Key=Value` with spaces around `=`.
    private mutating func apply(option: String, sshargs: String) throws(SSHError) {
        let trimmed = option.drop { $0 == " " || $0 == "\t" }
        guard let split = trimmed.firstIndex(where: { $0 == "=" || $0 == " " || $0 == "\t" }) else {
            throw .invalidSSHArgument(argument: "-o \(option)", sshargs: sshargs, message: "expected Key=Value")
        }
        let key = String(trimmed[..<split])
        var rest = trimmed[split...].drop { $0 == " " || $0 == "\t" }
        if rest.first == "=" { rest = rest.dropFirst().drop { $0 == " " || $0 == "\t" } }
        let value = String(rest)
        let argument = "-o \(option)"
        guard !value.isEmpty else {
            throw .invalidSSHArgument(argument: argument, sshargs: sshargs, message: "\(key) needs a value")
        }
        switch key.lowercased() {
        case "port":
            port = try Self.parsePort(value, argument: argument, sshargs: sshargs)
        case "user":
            user = value
        case "identityfile":
            identityFiles.append(value)
        case "compression":
            compression = try Self.parseYesNo(value, argument: argument, sshargs: sshargs)
        case "stricthostkeychecking":
            switch value.lowercased() {
            case "yes": strictHostKeyChecking = .yes
            case "ask": strictHostKeyChecking = .ask
            case "accept-new": strictHostKeyChecking = .acceptNew
            case "no", "off": strictHostKeyChecking = .no
            default:
                throw .invalidSSHArgument(argument: argument, sshargs: sshargs,
                                          message: "expected yes, ask, accept-new or no")
            }
        case "userknownhostsfile":
            knownHostsFile = value
        case "connecttimeout":
            connectTimeoutSeconds = try Self.parseSeconds(value, argument: argument, sshargs: sshargs, allowZero: false)
        case "serveraliveinterval":
            let seconds = try Self.parseSeconds(value, argument: argument, sshargs: sshargs, allowZero: true)
            keepaliveSeconds = seconds == 0 ? nil : seconds
        default:
            throw .unsupportedSSHArgument(argument: argument, sshargs: sshargs)
        }
    }

    private static func parsePort(_ text: String, argument: String, sshargs: String) throws(SSHError) -> Int {
        guard let port = Int(text), (1...65535).contains(port) else {
            throw .invalidSSHArgument(argument: argument, sshargs: sshargs, message: "a port is a number from 1 to 65535")
        }
        return port
    }

    private static func parseSeconds(_ text: String, argument: String, sshargs: String, allowZero: Bool) throws(SSHError) -> Int {
        guard let seconds = Int(text), seconds > 0 || (allowZero && seconds == 0) else {
            throw .invalidSSHArgument(argument: argument, sshargs: sshargs, message: "expected a whole number of seconds")
        }
        return seconds
    }

    private static func parseYesNo(_ text: String, argument: String, sshargs: String) throws(SSHError) -> Bool {
        switch text.lowercased() {
        case "yes": return true
        case "no": return false
        default: throw .invalidSSHArgument(argument: argument, sshargs: sshargs, message: "expected yes or no")
        }
    }

    /// Splits like a POSIX shell would (quotes and backslashes; no expansion).
    static func splitWords(_ text: String) throws(SSHError) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for character in text {
            if escaped {
                current.append(character)
                escaped = false
                continue
            }
            if let open = quote {
                if character == open {
                    quote = nil
                } else if character == "\\" && open == "\"" {
                    escaped = true
                } else {
                    current.append(character)
                }
                continue
            }
            switch character {
            case "'", "\"":
                quote = character
                inWord = true
            case "\\":
                escaped = true
                inWord = true
            case " ", "\t", "\n":
                if inWord { words.append(current) }
                current = ""
                inWord = false
            default:
                current.append(character)
                inWord = true
            }
        }
        if quote != nil || escaped {
            throw .invalidSSHArgument(argument: text, sshargs: text, message: "unbalanced quote or trailing backslash")
        }
        if inWord { words.append(current) }
        return words
    }
}
