#!/usr/bin/env python3
"""Many idle visitors: N keep-alive HTTP/1.1 connections, each re-reading one path every
PERIOD seconds (at a random phase), spread over source addresses 127.0.0.2, 127.0.0.3, …
(PER_ADDRESS connections each), as phones on election night keep a page open.

Usage: idle_visitors.py HOST PORT PATH CONNECTIONS PERIOD STEADY_SECONDS [PER_ADDRESS]

Opens every connection, lets each ask once, then prints `open N` on stdout and waits for a
line on stdin (so that the caller can read the server's memory and CPU with every connection
open and in use), then measures for STEADY_SECONDS and prints one line:
`requests N failed N p50_ms X p99_ms X max_ms X`
"""

import asyncio
import random
import sys
import time


async def fetch(reader, writer, request):
    """One request on an open connection; the body is read whole (Content-Length)."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = head[9:12]
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:].strip())
    if length:
        await reader.readexactly(length)
    return status == b"200"


async def visitor(host, port, source, request, period, state):
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0), limit=1 << 20)
    state["open"] += 1
    await state["go"].wait()
    await asyncio.sleep(random.uniform(0, period))
    while not state["done"]:
        started = time.monotonic()
        try:
            ok = await fetch(reader, writer, request)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            state["failed"] += 1
            writer.close()
            reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
            continue
        if state["measuring"]:
            if ok:
                state["times"].append(time.monotonic() - started)
            else:
                state["failed"] += 1
        await asyncio.sleep(period)
    writer.close()


async def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    conns, period, steady = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    per_address = int(sys.argv[7]) if len(sys.argv) > 7 else 250
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept-Encoding: gzip, br\r\n"
        "User-Agent: idle-visitors\r\n\r\n"
    ).encode()
    state = {"open": 0, "failed": 0, "times": [], "measuring": False, "done": False, "go": asyncio.Event()}
    tasks = []
    for i in range(conns):
        source = f"127.0.{2 + i // per_address // 254}.{2 + i // per_address % 254}"
        tasks.append(asyncio.create_task(visitor(host, port, source, request, period, state)))
        if i % 500 == 499:
            await asyncio.sleep(0.05)  # a crowd arriving, not a single burst
    while state["open"] < conns:
        if any(t.done() for t in tasks):
            failed = next(t for t in tasks if t.done())
            print(f"a connection could not be opened: {failed.exception()}", file=sys.stderr)
            sys.exit(1)
        await asyncio.sleep(0.1)
    state["go"].set()
    await asyncio.sleep(period)  # every visitor has asked once: the steady state
    print(f"open {state['open']}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    state["measuring"] = True
    await asyncio.sleep(steady)
    state["measuring"] = False
    state["done"] = True
    times = sorted(state["times"])
    n = len(times)

    def pct(p):
        return times[min(n - 1, int(n * p))] * 1000 if n else 0.0

    print(
        f"requests {n} failed {state['failed']} p50_ms {pct(0.50):.2f} p99_ms {pct(0.99):.2f} "
        f"max_ms {(times[-1] * 1000 if n else 0):.2f}",
        flush=True,
    )
    for t in tasks:
        t.cancel()


asyncio.run(main())
