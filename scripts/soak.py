#!/usr/bin/env python3
"""Mixed hostile load against a real contactd; samples RSS and fds of the daemon over time.

Round 1 and round 2 run the same load. Pass when: every well-formed request got a well-formed
answer, fds never exceed baseline + max-connections (+ upstream slack) and return to baseline after each round, and
RSS after the last round is within 10% (+8 MiB) of RSS after the first (a leak grows with work
done; the allocator keeps some of each round's peak). SOAK_ROUNDS sets the number of rounds.
"""
import json, os, random, signal, socket, subprocess, sys, tempfile, threading, time

binary, seconds = sys.argv[1], float(sys.argv[2])
MAX_CONNECTIONS = 256
# Beyond client connections the daemon holds upstream connections: the HTTP client's pool and, in
# --demo, the in-process demo API's end of each (2 fds per connection), and an accepted connection
# that is being refused for a moment. 64 bounds those with room to spare.
FD_SLACK = 64
work = tempfile.mkdtemp(prefix="contactd-soak.")
path = os.path.join(work, "contactd.sock")
daemon = subprocess.Popen(
    [binary, "--demo", "--socket", path, "--ttl", "2s", "--negative-ttl", "1s", "--cache-max-entries", "2000",
     "--max-connections", str(MAX_CONNECTIONS), "--max-requests-per-connection", "256", "--log-level", "warning"],
    stderr=open(os.path.join(work, "contactd.log"), "w"))
for _ in range(100):
    if os.path.exists(path):
        break
    time.sleep(0.05)

KNOWN = ["+14155551234", "+442079460958", "+4930901820", "+81312345678", "+5511987654321", "+33142685300"]
stats = {"ok": 0, "error_replies": 0, "malformed": 0, "refused": 0}
lock = threading.Lock()
stop = threading.Event()


def count(key):
    with lock:
        stats[key] += 1


def sample():
    rss = int([l for l in open(f"/proc/{daemon.pid}/status") if l.startswith("VmRSS")][0].split()[1])
    return rss, len(os.listdir(f"/proc/{daemon.pid}/fd"))


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def ask(s, reader, request):
    s.sendall(json.dumps(request).encode() + b"\n")
    line = reader.readline()
    if not line:
        raise ConnectionError("closed")
    reply = json.loads(line)
    if reply.get("jsonrpc") != "2.0" or ("result" in reply) == ("error" in reply):
        count("malformed")
    elif "error" in reply:
        count("refused" if reply["error"]["data"]["reason"] == "overloaded" else "error_replies")
    else:
        count("ok")


def client(kind):
    rnd = random.Random()
    while not stop.is_set():
        try:
            s = connect()
            reader = s.makefile("rb")
            if kind == "hits":
                for i in range(200):
                    ask(s, reader, {"id": i, "method": "contact.get", "params": {"phone_number": rnd.choice(KNOWN)}})
            elif kind == "misses":
                for i in range(50):
                    number = "+1999%07d" % rnd.randrange(10_000_000)
                    ask(s, reader, {"id": i, "method": "contact.get", "params": {"phone_number": number}})
            elif kind == "invalid":
                for junk in (b"not json\n", b"\xff\xfe\n", b"[]\n", b'{"id":1,"method":7}\n', b"[" * 200 + b"\n"):
                    s.sendall(junk)
                    json.loads(reader.readline())
                    count("error_replies")
            elif kind == "abrupt":
                s.sendall(b'{"id":1,"method":"contact.get","params":{"phone_number":"+1999555%04d"}}\n' % rnd.randrange(10000))
                s.sendall(b'{"id":2,"method":"contact.get","params":{"pho')
            elif kind == "slow_reader":
                batch = b"".join(b'{"id":%d,"method":"contact.get","params":{"phone_number":"%s"}}\n'
                                 % (i, rnd.choice(KNOWN).encode()) for i in range(2000))
                s.setblocking(False)
                try:
                    s.sendall(batch)
                except (BlockingIOError, OSError):
                    pass
                time.sleep(1.0)  # never reads its replies
            s.close()
        except (OSError, ValueError, ConnectionError):
            pass


def round_of_load(label):
    stop.clear()
    mix = ["hits"] * 8 + ["misses"] * 4 + ["invalid"] * 2 + ["abrupt"] * 2 + ["slow_reader"] * 2
    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in mix]
    for t in threads:
        t.start()
    peak_rss = peak_fds = 0
    end = time.time() + seconds
    while time.time() < end:
        rss, fds = sample()
        peak_rss, peak_fds = max(peak_rss, rss), max(peak_fds, fds)
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(15)
    time.sleep(3)  # let the daemon close what clients left
    settle = time.time() + 20
    rss, fds = sample()
    while fds > baseline_fds and time.time() < settle:
        time.sleep(0.5)
        rss, fds = sample()
    print(f"{label:8} peak RSS {peak_rss/1024:7.1f} MiB  peak fds {peak_fds:4}  after: RSS {rss/1024:7.1f} MiB  fds {fds:4}")
    return peak_rss, peak_fds, rss, fds


time.sleep(0.5)
# Warm up with the same load for a short while: the HTTP client's pool grows to its idle
# connections (each also an fd of the in-process demo API) and the allocator to its working set.
# The baseline is taken after that, so what follows measures leaks, not warm-up.
baseline_fds = 1 << 30
seconds, full = min(10, seconds), seconds
round_of_load("warm-up")
seconds = full
baseline_rss, baseline_fds = sample()
print(f"baseline RSS {baseline_rss/1024:.1f} MiB, fds {baseline_fds}; {seconds:.0f}s per round")
rounds = [round_of_load(f"round {i + 1}") for i in range(int(os.environ.get("SOAK_ROUNDS", "2")))]
daemon.send_signal(signal.SIGTERM)
code = daemon.wait(30)
print(f"answers: {stats}; daemon exit status {code}")
failures = []
if stats["malformed"]:
    failures.append("malformed replies")
if stats["ok"] == 0:
    failures.append("no successful lookups")
for index, (_, peak_fds, _, fds) in enumerate(rounds):
    label = f"round {index + 1}"
    if peak_fds > baseline_fds + MAX_CONNECTIONS + FD_SLACK:
        failures.append(f"{label}: fds exceeded baseline + max-connections + {FD_SLACK} ({peak_fds})")
    if fds > baseline_fds:
        failures.append(f"{label}: fds did not return to baseline ({fds} > {baseline_fds})")
first, last = rounds[0][2], rounds[-1][2]
if last > first * 1.10 + 8192:
    failures.append(f"RSS grew between rounds ({first} → {last} KiB)")
if code != 0:
    failures.append(f"daemon exit status {code}")
print("soak:", "PASS" if not failures else "FAIL: " + "; ".join(failures))
sys.exit(1 if failures else 0)
