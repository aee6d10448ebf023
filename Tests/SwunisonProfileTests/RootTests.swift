import Testing
@testable import SwunisonProfile

@Suite struct RootTests {
    let home = "/home/u"

    @Test("ssh roots", arguments: [
        ("ssh://host//srv/data", SSHRoot(user: nil, host: "host", port: nil, path: "/srv/data", isAbsolute: true)),
        ("ssh://alice@host:2222//srv/data/", SSHRoot(user: "alice", host: "host", port: 2222, path: "/srv/data", isAbsolute: true)),
        ("ssh://alice@host/sync", SSHRoot(user: "alice", host: "host", port: nil, path: "sync", isAbsolute: false)),
        ("ssh://host.example.org:22/a/b", SSHRoot(user: nil, host: "host.example.org", port: 22, path: "a/b", isAbsolute: false)),
        ("ssh://host", SSHRoot(user: nil, host: "host", port: nil, path: "", isAbsolute: false)),
        ("ssh://host/", SSHRoot(user: nil, host: "host", port: nil, path: "", isAbsolute: false)),
        ("ssh://[::1]:2200//x", SSHRoot(user: nil, host: "::1", port: 2200, path: "/x", isAbsolute: true)),
        ("ssh://a.b@c@host//x", SSHRoot(user: "a.b@c", host: "host", port: nil, path: "/x", isAbsolute: true)),
    ])
    func sshRoots(_ text: String, _ expected: SSHRoot) throws {
        guard case .ssh(let root) = try Root.parse(text, relativeTo: "/cwd", home: home) else {
            Issue.record("not an ssh root"); return
        }
        #expect(root.user == expected.user && root.host == expected.host && root.port == expected.port)
        #expect(root.path == expected.path && root.isAbsolute == expected.isAbsolute)
        #expect(root.written == text)
        #expect(Root.ssh(root).written == text)
    }

    @Test("local roots", arguments: [
        ("/srv/data", "/srv/data"), ("/srv//data/", "/srv/data"), ("/", "/"), ("sync", "/base/sync"),
        ("a/b/", "/base/a/b"), ("~", "/home/u"), ("~/x", "/home/u/x"), ("file:///abs/p", "/abs/p"), ("  /t  ", "/t"),
    ])
    func localRoots(_ text: String, _ path: String) throws {
        #expect(try Root.parse(text, relativeTo: "/base", home: home) == .local(path: path))
    }

    @Test("bad roots", arguments: [
        "", "ssh://", "ssh://host:0/x", "ssh://host:abc/x", "ssh:/host/x", "socket://h:1/x", "rsh://h/x", "ftp://h/x",
        "ssh://ho st/x", "ssh://[::1/x", "ssh://@host/x",
    ])
    func badRoots(_ text: String) {
        #expect(throws: RootParseError.self) { try Root.parse(text, relativeTo: "/base", home: home) }
    }

    @Test func profileRootsResolveAgainstHome() throws {
        let dir = TempDir()
        let p = try dir.load("root = sync\nroot = ssh://h/sync\n")
        #expect(p.roots[0] == .local(path: dir.path + "/home/sync"))
        #expect(p.roots[1].written == "ssh://h/sync")
    }

    @Test func renderedWrittenFormForBuiltRoots() {
        #expect(SSHRoot(user: "u", host: "h", port: 2, path: "/a", isAbsolute: true).written == "ssh://u@h:2//a")
        #expect(SSHRoot(user: nil, host: "::1", port: nil, path: "rel", isAbsolute: false).written == "ssh://[::1]/rel")
    }
}
