"""Issue #12, item 7: a burst of misses leaves no memory behind beyond the cache's own.

Starts the bench's fake API and a real contactd, fills 30,000 contacts through misses at 512 in
flight (`contactd-bench run --prefill-in-flight 512`), then empties the cache with
`contact.invalidate {"all": true}`, reading the daemon's RSS before, after the fill and after
emptying. Passes when the fill grew RSS by at most the cache's own bytes + 20 MiB and emptying
brought it back within 12 MiB of the start. Before the fix (a cancelled sleeping task per miss,
alive for the whole 5 s deadline) the debug build measured +40.8 and +25.2 MiB; since, +25.6-27.1
and +6.2-7.1; with hedging (issue #23) +32.3-34.1 and +6.5-6.8. A bound for a debug build on a loaded machine, not a benchmark (scripts/bench
--miss-storm has the release figures). It runs apart from `swift test`: run alongside the suite's
other spawning tests, this load made Foundation's Process.run crash in them (an over-read in
its /proc/self/fd scan; the tests now spawn with posix_spawn, see ChildProcess).
Usage: python3 scripts/miss-storm.py BIN_DIR (scripts/miss-storm builds and runs it)
"""
import os, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients", "python", "src"))
import contactd  # noqa: E402  (the in-tree client, not an installed one)

bin_dir = sys.argv[1]
contacts, in_flight = 30_000, 512
work = tempfile.mkdtemp(prefix="contactd-storm.")
sock = os.path.join(work, "contactd.sock")
port = 21000 + os.getpid() % 4000
api = subprocess.Popen([os.path.join(bin_dir, "contactd-bench"), "fake-api", "--port", str(port)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
daemon = subprocess.Popen([os.path.join(bin_dir, "contactd"), "--socket", sock, "--api-url", f"http://127.0.0.1:{port}",
                           "--log-level", "warning", "--cache-max-entries", "200000"],
                          env=dict(os.environ, CONTACTD_API_TOKEN="bench-token"))


def rss():
    return int([l for l in open(f"/proc/{daemon.pid}/status") if l.startswith("VmRSS")][0].split()[1]) * 1024


def rpc(method, params=None):
    with contactd.Client(sock, timeout=60) as client:
        return client.call(method, params)


failures = []
try:
    deadline = time.time() + 30
    while True:
        try:
            rpc("daemon.ping")
            break
        except (OSError, contactd.ContactdError):
            if time.time() > deadline:
                sys.exit("miss-storm: contactd did not start")
            time.sleep(0.05)
    before = rss()
    fill = subprocess.run([os.path.join(bin_dir, "contactd-bench"), "run", "--socket", sock, "--key-count", str(contacts),
                           "--prefill-in-flight", str(in_flight), "--requests", "1", "--warmup", "0"],
                          capture_output=True, text=True)
    if fill.returncode != 0:
        sys.exit(f"miss-storm: the fill failed: {fill.stdout}{fill.stderr}\n0 passed, 1 failed")
    stats = rpc("cache.stats")
    filled = rss()
    removed = rpc("contact.invalidate", {"all": True})["removed"]
    emptied = rss()
    mib = lambda b: f"{b / 2**20:.1f} MiB"
    print(f"miss storm: {contacts} contacts at {in_flight} in flight, cache {mib(stats['bytes'])}; "
          f"RSS +{mib(filled - before)} filled, +{mib(emptied - before)} emptied")
    checks = [
        ("every contact was cached", stats["entries"] == contacts and removed == contacts),
        # 20 MiB, not 16, since issue #23: a fetch is a task group whose attempt and hedge timer are
        # child tasks, and at 512 in flight the heap holds their memory until the trim after
        # emptying (+32.3 and +34.1 MiB filled, +6.5 and +6.8 emptied: nothing left behind).
        # 24 since issue #26: fresh-clone runs on this machine measured +32.6 to +37.6 MiB while full
        # (+33.6 to +35.6 when run alone), and a same-run A/B of release builds before and after
        # the issue (+26.9-29.0 and +27.8-30.9) showed no growth beyond that spread. What this
        # check exists for, a heap that cannot give back what a burst used, is the emptied check
        # below; this one catches the cache's own bytes growing out of bound.
        ("the fill grew RSS by at most the cache's bytes + 24 MiB", filled - before <= stats["bytes"] + (24 << 20)),
        ("emptying the cache brought RSS within 12 MiB of the start", emptied - before <= 12 << 20),
    ]
    for name, ok in checks:
        print(("PASS " if ok else "FAIL ") + name)
        if not ok:
            failures.append(name)
finally:
    daemon.terminate()
    api.terminate()
    daemon.wait(20)
    api.wait(20)
    subprocess.run(["rm", "-rf", work])
print(f"{3 - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
