#!/usr/bin/python3
"""The load mcos-bench puts on MCOS, put on an OpenStack Swift proxy (tools/swift_baseline.sh).

16 keep-alive clients (http.client, one connection each): creates of 4 KiB objects, stats (HEAD),
downloads and deletes of what was created, each phase for --seconds; then the median listing of
--list-objects objects. Prints one line per phase, in mcos-bench's layout.
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse


def connect(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60), u.path


def login(auth_url, user, key):
    conn, path = connect(auth_url)
    conn.request("GET", path, headers={"X-Auth-User": user, "X-Auth-Key": key})
    r = conn.getresponse()
    r.read()
    if r.status // 100 != 2:
        sys.exit(f"swift_bench: login failed: {r.status} {r.reason}")
    return r.getheader("X-Storage-Url"), r.getheader("X-Auth-Token")


class Phase:
    def __init__(self, name):
        self.name, self.latencies, self.errors, self.lock = name, [], 0, threading.Lock()

    def record(self, seconds, ok):
        with self.lock:
            if ok:
                self.latencies.append(seconds)
            else:
                self.errors += 1

    def report(self, elapsed):
        lat = sorted(self.latencies)
        n = len(lat)
        if n == 0:
            print(f"{self.name:34s} no successful operation ({self.errors} errors)")
            return
        p50 = lat[n // 2] * 1000
        p99 = lat[min(n - 1, int(n * 0.99))] * 1000
        print(f"{self.name:34s} {n / elapsed:6.0f} ops/s   p50 {p50:7.3f} ms   p99 {p99:7.3f} ms"
              f"   ({n} ops, {self.errors} errors)", flush=True)


def run(clients, work):
    """Runs work(client) on `clients` threads at once; returns the elapsed seconds."""
    threads = [threading.Thread(target=work, args=(c,)) for c in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - start


def request(conn, method, path, token, body=None):
    t0 = time.monotonic()
    conn.request(method, path, body=body, headers={"X-Auth-Token": token})
    r = conn.getresponse()
    r.read()
    return time.monotonic() - t0, r.status


class Client:
    """One keep-alive connection, opened again after a failure."""

    def __init__(self, storage_url, token):
        self.url, self.token = storage_url, token
        self.conn, _ = connect(storage_url)

    def timed(self, method, path, want, body=None):
        """(seconds, whether it answered `want`)."""
        try:
            took, status = request(self.conn, method, path, self.token, body)
            return took, status == want
        except (OSError, http.client.HTTPException):
            self.conn, _ = connect(self.url)
            return 0, False


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--auth", required=True, help="tempauth URL, e.g. http://127.0.0.1:8080/auth/v1.0")
    ap.add_argument("--user", default="test:tester")
    ap.add_argument("--key", default="testing")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--small-bytes", type=int, default=4096)
    ap.add_argument("--list-objects", type=int, default=2000)
    ap.add_argument("--list-rounds", type=int, default=20)
    args = ap.parse_args()

    storage_url, token = login(args.auth, args.user, args.key)
    base = urllib.parse.urlsplit(storage_url).path
    container = f"{base}/bench-{int(time.time())}"
    conn, _ = connect(storage_url)
    _, status = request(conn, "PUT", container, token)
    if status // 100 != 2:
        sys.exit(f"swift_bench: cannot create the container: {status}")
    body = b"x" * args.small_bytes
    print(f"swift_bench: {storage_url}, {args.clients} clients, {args.small_bytes}-byte objects",
          flush=True)

    created = [[] for _ in range(args.clients)]
    phase = Phase("create")

    def creates(c):
        cl = Client(storage_url, token)
        end = time.monotonic() + args.seconds
        i = 0
        while time.monotonic() < end:
            path = f"{container}/c{c}-{i}"
            took, ok = cl.timed("PUT", path, 201, body)
            phase.record(took, ok)
            if ok:
                created[c].append(path)
            i += 1

    phase.report(run(args.clients, creates))

    for name, method in (("stat", "HEAD"), ("download", "GET")):
        phase = Phase(name)

        def reads(c, method=method, phase=phase):
            cl = Client(storage_url, token)
            end = time.monotonic() + args.seconds
            mine = created[c] or [p for lst in created for p in lst]
            i = 0
            while time.monotonic() < end and mine:
                phase.record(*cl.timed(method, mine[i % len(mine)], 200))
                i += 1

        phase.report(run(args.clients, reads))

    phase = Phase("delete (every created)")

    def deletes(c):
        cl = Client(storage_url, token)
        for path in created[c]:
            phase.record(*cl.timed("DELETE", path, 204))

    phase.report(run(args.clients, deletes))

    if args.list_objects > 0:
        listed = f"{container}-list"
        request(conn, "PUT", listed, token)
        names = [f"{listed}/o{i:06d}" for i in range(args.list_objects)]

        def fill(c):
            cl = Client(storage_url, token)
            for path in names[c::args.clients]:
                cl.timed("PUT", path, 201, b"l")

        run(args.clients, fill)
        times = []
        count = 0
        for _ in range(args.list_rounds):
            t0 = time.monotonic()
            conn.request("GET", f"{listed}?format=json&limit=10000",
                         headers={"X-Auth-Token": token})
            r = conn.getresponse()
            data = r.read()
            times.append(time.monotonic() - t0)
            count = len(json.loads(data))
        print(f"list {count} objects: median {statistics.median(times) * 1000:.1f} ms "
              f"({args.list_rounds} rounds)", flush=True)


if __name__ == "__main__":
    main()
