/// The methods contactd serves (SPEC §3).
public enum RPCMethod: String, Sendable, CaseIterable {
    case contactGet = "contact.get"
    case contactInvalidate = "contact.invalidate"
    case cacheStats = "cache.stats"
    case cacheResetStats = "cache.reset_stats"
    case daemonStatus = "daemon.status"
    case daemonPing = "daemon.ping"
    case daemonConfig = "daemon.config"
    case daemonMetrics = "daemon.metrics"
    case daemonReload = "daemon.reload"
    case rpcDiscover = "rpc.discover"
}
