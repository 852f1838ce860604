"""A small closed-loop HTTP/1.1 load generator (asyncio, keep-alive).

Each of ``concurrency`` connections sends one request, waits for the reply,
then sends the next, for ``duration`` seconds or ``requests`` requests,
whichever comes first. Only replies completed inside the window count. It
reconnects when the server closes the connection
(wsgiref answers HTTP/1.0 and closes after every reply), so servers with and
without keep-alive are measured the same way. Run it in its own process so it
does not share a GIL with the server under test.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    keep = lines[0].startswith(b"HTTP/1.1")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            keep = value.strip().lower() == b"keep-alive"
    if length is None:
        await reader.read()  # body until close
        keep = False
    else:
        await reader.readexactly(length)
    return status, keep


async def _worker(host, port, paths, stop_at, budget, result, extra=b""):
    reader = writer = None
    i = 0
    while time.perf_counter() < stop_at and budget[0] > 0:
        budget[0] -= 1
        path = paths[i % len(paths)]
        i += 1
        start = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (path, host.encode(), extra))
            status, keep = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError):
            result.errors += 1
            writer = None
            continue
        done = time.perf_counter()
        if done > stop_at:  # finished after the window: not counted
            break
        result.latencies.append(done - start)
        if status >= 400:
            result.errors += 1
        if not keep:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def _run(url, paths, concurrency, duration, requests, extra=b""):
    parts = urlsplit(url)
    result = Result()
    budget = [requests]
    start = time.perf_counter()
    stop_at = start + duration
    tasks = [asyncio.ensure_future(_worker(parts.hostname, parts.port, paths, stop_at, budget,
                                           result, extra)) for _ in range(concurrency)]
    # Requests still in flight at the deadline (a SYN retried after a full
    # backlog can take seconds) are cancelled, not waited for.
    _, pending = await asyncio.wait(tasks, timeout=duration + 0.05)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    result.elapsed = min(time.perf_counter() - start, duration)
    return result


def event_loop(name: str = "auto") -> str:
    """The event loop the load generator runs on: ``uvloop`` (about half the
    CPU per request of asyncio's, which on a small machine is CPU the server
    under test does not get) when installed and ``name`` is auto, else asyncio."""
    if name == "auto":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return "asyncio"
        return "uvloop"
    return name


def _arun(main, loop: str):
    if event_loop(loop) == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def run(url: str, paths: list[str], concurrency: int = 8, duration: float = 3.0,
        requests: int = 10**9, token: str | None = None, loop: str = "auto") -> Result:
    """Load ``url`` with GET ``paths`` (cycled), with ``token`` as a Bearer
    token if given (a cluster with http_auth = "token"). Blocking."""
    encoded = [p.encode() for p in paths]
    extra = b"Authorization: Bearer %s\r\n" % token.encode() if token else b""
    return _arun(_run(url, encoded, concurrency, duration, requests, extra), loop)


async def _redis_run(address, password, op, keys, value, concurrency, duration):
    import redis.asyncio as aioredis

    host, port = address.rsplit(":", 1)
    client = aioredis.Redis(host=host, port=int(port), password=password,
                            max_connections=concurrency)
    result = Result()
    stop_at = time.perf_counter() + duration

    async def worker(offset):
        i = offset
        while time.perf_counter() < stop_at:
            key = f"key:{i % keys}"
            i += concurrency
            start = time.perf_counter()
            if op == "get":
                await client.get(key)
            else:
                await client.set(key, value)
            done = time.perf_counter()
            if done <= stop_at:
                result.latencies.append(done - start)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    result.elapsed = duration
    await client.aclose()
    return result


def main(argv=None):
    """``python loadgen.py TARGET OP`` prints one JSON line of results.

    TARGET is an HTTP base URL (``http://127.0.0.1:5000``; ``$DTRIAD_DATA_TOKEN``
    is sent as a Bearer token if set) or ``redis://host:port`` (redis-py
    asyncio, for the direct-Redis baseline).
    """
    import argparse
    import json
    import os
    import resource

    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("op", choices=["get", "set"])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
                        help="the load generator's event loop (auto: uvloop if installed)")
    args = parser.parse_args(argv)
    value = "v" * args.value_size
    if args.target.startswith("redis://"):
        result = _arun(_redis_run(args.target[len("redis://"):],
                                  os.environ.get("REDIS_PASSWORD"), args.op, args.keys,
                                  value, args.concurrency, args.duration), args.loop)
    else:
        if args.op == "get":
            paths = [f"/get?key=key:{i}" for i in range(args.keys)]
        else:
            paths = [f"/set?key=key:{i}&value={value}" for i in range(args.keys)]
        result = run(args.target, paths, args.concurrency, args.duration,
                     token=os.environ.get("DTRIAD_DATA_TOKEN"), loop=args.loop)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"requests": len(result.latencies), "errors": result.errors,
                      "loop": event_loop(args.loop),
                      "client_cpu_s": round(cpu.ru_utime + cpu.ru_stime, 3),
                      "throughput": round(result.throughput, 1),
                      "p50_ms": round(result.percentile(50) * 1e3, 4),
                      "p99_ms": round(result.percentile(99) * 1e3, 4)}))


if __name__ == "__main__":
    main()
