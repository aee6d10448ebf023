/// This release of swunison: printed by `--version`, and the name a deployed server binary gets
/// on a remote host (`~/.swunison/bin/swunison-<version>`), so client and server never disagree.
public enum SwunisonVersion {
    public static let current = "0.1.0"
}
