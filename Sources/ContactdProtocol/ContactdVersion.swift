/// The version of contactd and its tools: `--version`, `daemon.status`, the API's `User-Agent`
/// and the start-up log line all read it here.
public enum ContactdVersion {
    public static let current = "0.3.0"
}
