#!/usr/bin/env python3
"""Hostile and crowded clients for bench/hostile.sh.

  attack  PORT N ADDRESSES SECONDS PART PARTS
                                     N silent connections from 127.0.0.2 … (ADDRESSES of
                                     them), each reopened as soon as the server closes it,
                                     for SECONDS; this process opens every PARTS-th one from
                                     the PART-th (so that PARTS processes share the open-file
                                     limit). Prints "<peak held> <opened> <connect failures>".
  visitor PORT SECONDS OUT           a visitor: a new connection and GET /json/main.json
                                     every 50 ms for SECONDS (or until stopped); one line
                                     per request in OUT:
                                     "<unix time> <1 if 200 else 0> <milliseconds>".
  summary OUT T0 T1 T2 T3            the visitor's success rate and p99 between the marks:
                                     before [T0,T1), during [T1,T2), after [T2,T3).
  crowd   PORT BROWSERS SECONDS      BROWSERS pages behind one address (127.0.0.1): each
                                     loads its six files over up to six connections, then
                                     re-reads json/main.json every 2 s over a kept-alive
                                     one, as browsers do; prints answers by status and the
                                     requests that got no answer.
"""

import asyncio
import random
import resource
import socket
import sys
import time

REQUEST = "GET {} HTTP/1.1\r\nHost: prep.example\r\nUser-Agent: hostile.py\r\n\r\n"
PAGE = [
    "/index.html",
    "/css/prep.css",
    "/js/prep.js",
    "/img/logo.svg",
    "/json/main.json",
    "/json/PRES/distrito/1.json",
]


def raise_open_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def open_from(source, port):
    """A non-blocking socket connected to 127.0.0.1:port from the address `source`."""
    loop = asyncio.get_running_loop()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.bind((source, 0))
    await loop.sock_connect(s, ("127.0.0.1", port))
    return s


async def attack(port, n, addresses, seconds, part, parts):
    raise_open_files()
    loop = asyncio.get_running_loop()
    end = time.monotonic() + seconds
    opened = 0
    held = 0
    peak = 0
    failed = 0
    connecting = asyncio.Semaphore(256)

    async def one(i):
        nonlocal opened, held, peak, failed
        source = f"127.0.0.{2 + i % addresses}"
        while time.monotonic() < end:
            try:
                async with connecting:
                    s = await open_from(source, port)
            except OSError:
                failed += 1
                await asyncio.sleep(0.2)
                continue
            opened += 1
            held += 1
            peak = max(peak, held)
            try:
                # Never send a byte; wait until the server closes (or the attack ends).
                await asyncio.wait_for(loop.sock_recv(s, 1), max(0.0, end - time.monotonic()))
            except (asyncio.TimeoutError, OSError):
                pass
            held -= 1
            s.close()

    await asyncio.gather(*(one(i) for i in range(part, n, parts)))
    print(f"{peak} {opened} {failed}", flush=True)


def visitor(port, seconds, out):
    end = time.time() + seconds
    request = REQUEST.format("/json/main.json").encode()
    with open(out, "a") as f:
        while time.time() < end:
            started = time.time()
            t0 = time.perf_counter()
            ok = 0
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(request)
                    got = b""
                    while b"\r\n\r\n" not in got:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        got += chunk
                    head, _, body = got.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value.strip())
                    while len(body) < length:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        body += chunk
                    ok = int(head.startswith(b"HTTP/1.1 200") and len(body) == length)
            except OSError:
                ok = 0
            ms = (time.perf_counter() - t0) * 1000
            f.write(f"{started:.3f} {ok} {ms:.2f}\n")
            f.flush()
            time.sleep(max(0.0, 0.05 - (time.time() - started)))


def summary(out, marks):
    rows = []
    with open(out) as f:
        for line in f:
            fields = line.split()
            if len(fields) == 3:  # the last line may be cut when the visitor is stopped
                rows.append((float(fields[0]), int(fields[1]), float(fields[2])))
    parts = []
    for name, a, b in zip(["before", "during", "after"], marks, marks[1:]):
        phase = [r for r in rows if a <= r[0] < b]
        if not phase:
            parts.append(f"{name}: no requests")
            continue
        ok = sum(r[1] for r in phase)
        lat = sorted(r[2] for r in phase)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        parts.append(f"{name}: {100.0 * ok / len(phase):.1f} % of {len(phase)} ok, p99 {p99:.1f} ms")
    print("visitor: " + "; ".join(parts), flush=True)


class Browser:
    """One page: a pool of kept-alive connections, used as a browser uses them."""

    def __init__(self, port, stats):
        self.port = port
        self.stats = stats
        self.idle = []

    async def connection(self):
        """The most recently used idle connection the server has not closed, else a new one;
        and whether it is reused."""
        while self.idle:
            reader, writer = self.idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        return reader, writer, False

    async def get(self, path):
        try:
            reader, writer, reused = await self.connection()
        except OSError:
            self.stats["no connection"] += 1
            return
        try:
            writer.write(REQUEST.format(path).encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            await asyncio.wait_for(reader.readexactly(length), 20)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, IndexError):
            writer.close()
            if reused:
                # A kept-alive connection the server closed as the request left: browsers
                # send the request again on a new connection, and so does this one.
                self.stats["resent"] += 1
                await self.get(path)
            else:
                self.stats["unanswered"] += 1
            return
        self.stats[status] = self.stats.get(status, 0) + 1
        self.idle.append((reader, writer))

    async def run(self, seconds, start):
        await asyncio.sleep(start)
        # The page, then its files, up to six at once.
        await self.get(PAGE[0])
        await asyncio.gather(*(self.get(p) for p in PAGE[1:]))
        end = time.monotonic() + seconds
        await asyncio.sleep(random.uniform(0, 2))
        while time.monotonic() < end:
            await self.get("/json/main.json")
            await asyncio.sleep(2)

async def crowd(port, browsers, seconds):
    raise_open_files()
    stats = {"unanswered": 0, "no connection": 0, "resent": 0}
    pages = [Browser(port, stats) for _ in range(browsers)]
    # Everyone opens the page within the first five seconds (the 20:00 rush).
    await asyncio.gather(*(b.run(seconds, random.uniform(0, 5)) for b in pages))
    answered = sum(v for k, v in stats.items() if isinstance(k, int))
    limited = stats.get(429, 0)
    dropped = stats["unanswered"] + stats["no connection"]
    by_status = ", ".join(f"{k}: {v}" for k, v in sorted((k, v) for k, v in stats.items() if isinstance(k, int)))
    print(f"crowd: {browsers} pages behind one address for {seconds} s: {answered} answers ({by_status}); "
          f"429: {100.0 * limited / max(1, answered):.2f} %; dropped: {dropped} "
          f"({stats['unanswered']} unanswered, {stats['no connection']} connections refused); "
          f"resent after a kept-alive connection closed: {stats['resent']}", flush=True)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "attack":
        asyncio.run(attack(int(args[0]), int(args[1]), int(args[2]), float(args[3]),
                           int(args[4]), int(args[5])))
    elif cmd == "visitor":
        visitor(int(args[0]), float(args[1]), args[2])
    elif cmd == "summary":
        summary(args[0], [float(a) for a in args[1:5]])
    elif cmd == "crowd":
        asyncio.run(crowd(int(args[0]), int(args[1]), float(args[2])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
