import Testing
@testable import SwunisonSSH

/// One row of the `sshargs` table: the text and what it must parse to.
struct SSHArgumentsCase: Sendable, CustomTestStringConvertible {
    var sshargs: String
    var expected: SSHArguments
    var testDescription: String { "sshargs \"\(sshargs)\"" }
}

private func arguments(_ configure: (inout SSHArguments) -> Void) -> SSHArguments {
    var result = SSHArguments()
    configure(&result)
    return result
}

let sshArgumentsCases: [SSHArgumentsCase] = [
    .init(sshargs: "", expected: SSHArguments()),
    .init(sshargs: "-p 2222", expected: arguments { $0.port = 2222 }),
    .init(sshargs: "-p2222", expected: arguments { $0.port = 2222 }),
    .init(sshargs: "-l alice", expected: arguments { $0.user = "alice" }),
    .init(sshargs: "-i ~/.ssh/sync_key -i /etc/k2", expected: arguments { $0.identityFiles = ["~/.ssh/sync_key", "/etc/k2"] }),
    .init(sshargs: "-C", expected: arguments { $0.compression = true }),
    .init(sshargs: "-o Port=2200", expected: arguments { $0.port = 2200 }),
    .init(sshargs: "-oPort=2200", expected: arguments { $0.port = 2200 }),
    .init(sshargs: "-o \"Port 2200\"", expected: arguments { $0.port = 2200 }),
    .init(sshargs: "-o 'User = bob'", expected: arguments { $0.user = "bob" }),
    .init(sshargs: "-o identityfile=\"/keys/my key\"", expected: arguments { $0.identityFiles = ["/keys/my key"] }),
    .init(sshargs: "-o Compression=no", expected: arguments { $0.compression = false }),
    .init(sshargs: "-o StrictHostKeyChecking=yes", expected: arguments { $0.strictHostKeyChecking = .yes }),
    .init(sshargs: "-o StrictHostKeyChecking=accept-new", expected: arguments { $0.strictHostKeyChecking = .acceptNew }),
    .init(sshargs: "-o StrictHostKeyChecking=no", expected: arguments { $0.strictHostKeyChecking = .no }),
    .init(sshargs: "-o UserKnownHostsFile=/tmp/kh", expected: arguments { $0.knownHostsFile = "/tmp/kh" }),
    .init(sshargs: "-o ConnectTimeout=7", expected: arguments { $0.connectTimeoutSeconds = 7 }),
    .init(sshargs: "-o ServerAliveInterval=15", expected: arguments { $0.keepaliveSeconds = 15 }),
    .init(sshargs: "-o ServerAliveInterval=0", expected: SSHArguments()),
    .init(sshargs: "  -C   -p 22 -l root -oConnectTimeout=3  ", expected: arguments {
        $0.compression = true; $0.port = 22; $0.user = "root"; $0.connectTimeoutSeconds = 3
    }),
]

@Test(arguments: sshArgumentsCases)
func parsesSupportedSSHArguments(_ row: SSHArgumentsCase) throws {
    #expect(try SSHArguments.parse(row.sshargs) == row.expected)
}

@Test(arguments: [
    ("-o ProxyJump=gateway", "-o ProxyJump=gateway"),
    ("-p 22 -o ServerAliveCountMax=3", "-o ServerAliveCountMax=3"),
    ("-A", "-A"),
    ("-v -p 22", "-v"),
    ("-Cv", "-Cv"),
    ("host", "host"),
])
func rejectsUnsupportedSSHArguments(_ sshargs: String, _ offending: String) {
    #expect(throws: SSHError.unsupportedSSHArgument(argument: offending, sshargs: sshargs)) {
        try SSHArguments.parse(sshargs)
    }
    let text = (try? SSHArguments.parse(sshargs)).map { "\($0)" } ?? SSHError.unsupportedSSHArgument(
        argument: offending, sshargs: sshargs).description
    #expect(text.contains(offending))
}

@Test(arguments: ["-p", "-p 0", "-p 70000", "-p x", "-o Port", "-o Compression=maybe",
                  "-o StrictHostKeyChecking=sometimes", "-o ConnectTimeout=-1", "-o 'Port 22", "-i"])
func rejectsBadValues(_ sshargs: String) {
    #expect {
        try SSHArguments.parse(sshargs)
    } throws: { error in
        guard case .invalidSSHArgument = error as? SSHError else { return false }
        return true
    }
}

@Test func appliesOverOptionsAndDestination() throws {
    let parsed = try SSHArguments.parse("-p 2022 -l deploy -i /k -C -o StrictHostKeyChecking=yes -o ServerAliveInterval=9")
    var options = SSHOptions(identityFiles: ["/first"], keepaliveSeconds: 30)
    var destination = SSHDestination(user: "me", host: "example.org")
    parsed.apply(to: &options)
    parsed.apply(to: &destination)
    #expect(options.identityFiles == ["/first", "/k"])
    #expect(options.compression)
    #expect(options.strictHostKeyChecking == .yes)
    #expect(options.keepaliveSeconds == 9)
    #expect(destination == SSHDestination(user: "deploy", host: "example.org", port: 2022))
}

@Test func shellQuotingSurvivesQuotes() {
    #expect(shellQuoted("plain") == "'plain'")
    #expect(shellQuoted("it's") == "'it'\\''s'")
    #expect(shellQuoted("") == "''")
}
