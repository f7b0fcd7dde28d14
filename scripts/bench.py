#!/usr/bin/env python3
"""contactd against Redis, side by side, measured by the same client (contactd-bench).

Servers (contactd, Redis, a do-nothing echo server) are pinned to CPU 0, the load generator to
CPU 1. Every configuration is run REPS times, alternating the servers, and the medians are
reported. Writes docs/bench/*.dat and docs/bench/throughput.svg (gnuplot) and prints the tables
for docs/benchmarks.md. Usage: scripts/bench [--quick] [--skip-memory | --memory-only | --miss-storm]

--miss-storm: RSS after filling 100,000 and 1,000,000 contacts through misses at 32 and 512 in
flight, beside Redis holding the same contact bytes, and RSS after `contact.invalidate {"all":true}`.
"""
import json, os, signal, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients", "python", "src"))
import contactd  # noqa: E402  (the in-tree client, not an installed one)


def rpc(sock_path, method, params=None):
    with contactd.Client(sock_path, timeout=60) as client:
        return client.call(method, params)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build", "release")
QUICK = "--quick" in sys.argv
SKIP_MEMORY = "--skip-memory" in sys.argv
MEMORY_ONLY = "--memory-only" in sys.argv
MISS_STORM = "--miss-storm" in sys.argv
REPS = 1 if QUICK else 3
SECONDS = 2 if QUICK else 5
KEYS = 1000
MEMORY_KEYS = 100_000 if QUICK else 1_000_000
SERVER_CPU, CLIENT_CPU = "0", "1"
work = tempfile.mkdtemp(prefix="contactd-bench.")
children = []


def start(args, env=None, log="server"):
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + args, env=env,
                            stdout=open(os.path.join(work, log + ".log"), "w"), stderr=subprocess.STDOUT)
    children.append(proc)
    return proc


def wait_for_socket(path, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            s.close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"bench: nothing listens on {path}")


def bench(*args):
    out = subprocess.run(["taskset", "-c", CLIENT_CPU, os.path.join(BIN, "contactd-bench"), "run", "--json"] + list(args),
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"bench: contactd-bench {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def redis_bytes_per_key(count):
    """RSS per key of a fresh Redis holding `count` contacts' JSON under their phone numbers: the
    same contact bytes contactd caches (its reply envelope is made per request), not the reply."""
    sock = os.path.join(work, "redis-mem.sock")
    redis = start(["redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--save", "",
                   "--appendonly", "no"], log="redis-mem")
    wait_for_socket(sock)
    before = rss_kib(redis.pid)
    subprocess.run([os.path.join(BIN, "contactd-bench"), "load-redis", "--socket", sock, "--count", str(count),
                    "--contact-bytes"], check=True, stdout=subprocess.DEVNULL)
    per_key = (rss_kib(redis.pid) - before) * 1024 / count
    stop(redis)
    return per_key


def miss_storm():
    """RSS after a fill through misses at a given concurrency, and after emptying the cache."""
    api_port = 18000 + os.getpid() % 1000
    env = dict(os.environ, CONTACTD_API_TOKEN="bench-token")
    api = subprocess.Popen(["taskset", "-c", CLIENT_CPU, os.path.join(BIN, "contactd-bench"), "fake-api", "--port",
                            str(api_port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    children.append(api)
    mib = lambda b: f"{b / 2**20:.1f}"
    print("| contacts | misses in flight | cache.stats bytes (MiB) | RSS growth (MiB) | RSS bytes per contact "
          "| Redis bytes per key | RSS above start after invalidating all (MiB) |\n|---|---|---|---|---|---|---|")
    for count in ([100_000] if QUICK else [100_000, 1_000_000]):
        redis_per_key = redis_bytes_per_key(count)
        for in_flight in (32, 512):
            csock = os.path.join(work, f"contactd-storm-{count}-{in_flight}.sock")
            contactd = start([os.path.join(BIN, "contactd"), "--socket", csock, "--api-url",
                              f"http://127.0.0.1:{api_port}", "--log-level", "warning", "--cache-max-entries",
                              "2000000", "--cache-max-bytes", "4G"], env=env, log="contactd-storm")
            wait_for_socket(csock)
            time.sleep(0.5)  # let start-up allocations settle before the baseline
            before = rss_kib(contactd.pid) * 1024
            bench("--socket", csock, "--key-count", str(count), "--prefill-in-flight", str(in_flight),
                  "--requests", "1", "--warmup", "0")
            filled = rss_kib(contactd.pid) * 1024
            cache_bytes = rpc(csock, "cache.stats")["bytes"]
            rpc(csock, "contact.invalidate", {"all": True})
            emptied = rss_kib(contactd.pid) * 1024
            print(f"| {count:,} | {in_flight} | {mib(cache_bytes)} | {mib(filled - before)} | "
                  f"{(filled - before) / count:.0f} | {redis_per_key:.0f} | {mib(emptied - before)} |", flush=True)
            stop(contactd)


def main():
    if MISS_STORM:
        return miss_storm()
    api_port = 18000 + os.getpid() % 1000
    redis_sock, contactd_sock, echo_sock = (os.path.join(work, n) for n in ("redis.sock", "contactd.sock", "echo.sock"))
    env = dict(os.environ, CONTACTD_API_TOKEN="bench-token")
    api = subprocess.Popen(["taskset", "-c", CLIENT_CPU, os.path.join(BIN, "contactd-bench"), "fake-api", "--port", str(api_port)],
                           stdout=open(os.path.join(work, "api.log"), "w"), stderr=subprocess.STDOUT)
    children.append(api)
    redis = start(["redis-server", "--port", "0", "--unixsocket", redis_sock, "--unixsocketperm", "700",
                   "--save", "", "--appendonly", "no"], log="redis")
    contactd = start([os.path.join(BIN, "contactd"), "--socket", contactd_sock, "--api-url", f"http://127.0.0.1:{api_port}",
                      "--log-level", "warning", "--cache-max-entries", "2000000", "--cache-max-bytes", "4G"], env=env,
                     log="contactd")
    echo = start([os.path.join(BIN, "contactd-bench"), "echo", "--socket", echo_sock], log="echo")
    for path in (redis_sock, contactd_sock, echo_sock):
        wait_for_socket(path)
    if MEMORY_ONLY:
        return memory(api_port, env)
    subprocess.run([os.path.join(BIN, "contactd-bench"), "load-redis", "--socket", redis_sock, "--count", str(KEYS)],
                   check=True, stdout=subprocess.DEVNULL)
    # Warm contactd's cache with the same keys (a run prefills every key once).
    bench("--socket", contactd_sock, "--key-count", str(KEYS), "--duration", "1", "--warmup", "0")

    servers = {
        "contactd": ["--socket", contactd_sock, "--key-count", str(KEYS), "--no-prefill"],
        "redis": ["--protocol", "resp", "--socket", redis_sock, "--key-count", str(KEYS)],
        "echo": ["--socket", echo_sock, "--keys", "one", "--no-prefill"],
    }
    configs = [(c, 1) for c in (1, 2, 5, 10, 25, 50, 100)] + [(50, 16)]
    results = {}
    for conns, depth in configs:
        for rep in range(REPS):
            for name, args in servers.items():
                r = bench(*args, "--connections", str(conns), "--pipeline", str(depth), "--duration", str(SECONDS),
                          "--warmup", "1", "--label", name)
                if r["wrong"] or r["unanswered"]:
                    sys.exit(f"bench: {name} gave wrong answers: {r}")
                results.setdefault((name, conns, depth), []).append(r)
        print(f"  measured {conns} × {depth}", file=sys.stderr)

    def med(name, conns, depth, field):
        return statistics.median(r[field] for r in results[(name, conns, depth)])

    print(f"\n### Hit path ({REPS} alternating runs of {SECONDS} s each, medians; {KEYS} keys, ~550-byte replies)\n")
    print("| connections × in flight | contactd req/s | p50 µs | p99 µs | Redis req/s | p50 µs | p99 µs | contactd/Redis | echo floor req/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for conns, depth in [(1, 1), (50, 1), (50, 16)]:
        c = [med("contactd", conns, depth, f) for f in ("rps", "p50_us", "p99_us")]
        r = [med("redis", conns, depth, f) for f in ("rps", "p50_us", "p99_us")]
        e = med("echo", conns, depth, "rps")
        print(f"| {conns} × {depth} | {c[0]:,.0f} | {c[1]:.0f} | {c[2]:.0f} | {r[0]:,.0f} | {r[1]:.0f} | {r[2]:.0f} "
              f"| **{c[0] / r[0]:.2f}** | {e:,.0f} |")
    os.makedirs(os.path.join(ROOT, "docs", "bench"), exist_ok=True)
    with open(os.path.join(ROOT, "docs", "bench", "throughput.dat"), "w") as out:
        out.write("# connections contactd redis echo (req/s, unpipelined, medians)\n")
        for conns, depth in configs:
            if depth == 1:
                out.write(f"{conns} {med('contactd', conns, 1, 'rps'):.0f} {med('redis', conns, 1, 'rps'):.0f} "
                          f"{med('echo', conns, 1, 'rps'):.0f}\n")
    subprocess.run(["gnuplot", os.path.join(ROOT, "scripts", "bench-chart.gp")], cwd=os.path.join(ROOT, "docs", "bench"),
                   check=True)

    # The miss path: a miss through contactd against the fake API, and the same API called
    # directly, alternating; both one connection, one request at a time.
    print("\n### Miss path (1 connection, each request a new key; medians)\n")
    direct, through = [], []
    for rep in range(REPS):
        direct.append(bench("--protocol", "http", "--port", str(api_port), "--duration", str(SECONDS), "--warmup", "1",
                            "--miss-ratio", "1"))
        through.append(bench("--socket", contactd_sock, "--duration", str(SECONDS), "--warmup", "1", "--miss-ratio", "1",
                             "--no-prefill"))
    print("| path | req/s | p50 µs | p99 µs |")
    print("|---|---|---|---|")
    for label, runs in (("API directly (HTTP keep-alive)", direct), ("through contactd (miss)", through)):
        print(f"| {label} | {statistics.median(r['rps'] for r in runs):,.0f} | "
              f"{statistics.median(r['p50_us'] for r in runs):.0f} | {statistics.median(r['p99_us'] for r in runs):.0f} |")
    added = statistics.median(r["p99_us"] for r in through) - statistics.median(r["p99_us"] for r in direct)
    print(f"\np99 added by contactd on a miss: {added:.0f} µs")

    stop(echo)
    startup = subprocess.run(["taskset", "-c", SERVER_CPU, os.path.join(BIN, "contactd-bench"), "startup", "--runs", "20"],
                             capture_output=True, text=True, check=True).stdout.strip()
    print(f"\n### Start-up\n\n{startup}")

    if not SKIP_MEMORY:
        memory(api_port, env)


def memory(api_port, env):
    """RSS per cached contact (reachable by phone and id) against RSS per Redis key, same bytes."""
    print(f"\n### Memory ({MEMORY_KEYS:,} entries)\n")
    redis_per_key = redis_bytes_per_key(MEMORY_KEYS)

    csock = os.path.join(work, "contactd-mem.sock")
    contactd = start([os.path.join(BIN, "contactd"), "--socket", csock, "--api-url", f"http://127.0.0.1:{api_port}",
                      "--log-level", "warning", "--cache-max-entries", "2000000", "--cache-max-bytes", "4G",
                      "--api-concurrency", "64"], env=env, log="contactd-mem")
    wait_for_socket(csock)
    before = rss_kib(contactd.pid)
    started = time.time()
    bench("--socket", csock, "--key-count", str(MEMORY_KEYS), "--requests", "1", "--warmup", "0")
    contactd_per_entry = (rss_kib(contactd.pid) - before) * 1024 / MEMORY_KEYS
    print(f"| server | RSS bytes per entry |\n|---|---|\n| Redis 7 (`SET phone contact-json`) | {redis_per_key:.0f} |\n"
          f"| contactd (contact by phone and by id) | {contactd_per_entry:.0f} |\n")
    print(f"contactd/Redis bytes per entry: {contactd_per_entry / redis_per_key:.2f} "
          f"(filling contactd through the fake API took {time.time() - started:.0f} s)")
    stop(contactd)


try:
    main()
finally:
    for proc in children:
        if proc.poll() is None:
            proc.kill()
    subprocess.run(["rm", "-rf", work])
