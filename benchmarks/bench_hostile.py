"""Well-behaved clients beside attackers: does hostile traffic hurt anyone else?

Starts `slt serve BUNDLE` (uvicorn, the installed CLI, loopback only) and runs
`--clients` threads posting a real clip back to back for `--seconds`, twice: alone,
then with `--attackers` more threads that each loop over three attacks: slowloris
headers (a byte a second), a body that stalls after its first bytes, and a
frame-count bomb (a small MKV with thousands of tiny frames). The table puts the
well-behaved clients' requests, success rate and p50/p99 latency of the two runs
side by side, with what the attackers got (408/422 by code). Bounded in count and
time: every socket has a timeout, every thread stops at the deadline.

    python benchmarks/bench_hostile.py                    # a tiny random bundle, built here
    python benchmarks/bench_hostile.py --clients 4 --attackers 8 --seconds 30
"""

from __future__ import annotations

import argparse
import collections
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from bench_serve import free_port, sample_video, tiny_bundle, wait_ready
from rich.console import Console
from rich.table import Table


def bomb(path: Path, frames: int = 6000) -> Path:
    """Matroska (no frame count in its header) with `frames` 16×16 frames at 1000 fps."""
    import av
    import numpy as np

    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=1000)
        stream.width = stream.height = 16
        stream.pix_fmt, stream.options = "yuv420p", {"preset": "ultrafast"}
        for t in range(frames):
            img = np.full((16, 16, 3), t % 255, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())
    return path


def good_client(i: int, url: str, video: bytes, end: float, out: list) -> None:
    with httpx.Client(timeout=120) as c:
        while time.perf_counter() < end:
            t = time.perf_counter()
            try:
                status = c.post(f"{url}/v1/translate", files={"file": ("c.mp4", video)}).status_code
            except httpx.TransportError:
                status = 0
            out.append((status, time.perf_counter() - t, i))
            if status == 503:  # as a client should: wait as long as the server asks
                time.sleep(1)


def attacker(i: int, port: int, bomb_bytes: bytes, end: float, got: collections.Counter) -> None:
    head = (b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            b"boundary=b\r\nContent-Length: 1000000\r\n\r\n--b\r\nContent-Disposition: "
            b'form-data; name="file"; filename="a.mp4"\r\n\r\n')  # fmt: skip
    n = i
    while time.perf_counter() < end:
        kind = ("slowloris", "stalled body", "bomb")[n % 3]
        n += 1
        try:
            if kind == "bomb":
                r = httpx.post(f"http://127.0.0.1:{port}/v1/translate",
                               files={"file": ("b.mkv", bomb_bytes)}, timeout=60)  # fmt: skip
                got[f"{kind}: {r.status_code} {r.json()['error']['code']}"] += 1
                continue
            with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                if kind == "slowloris":
                    for byte in b"POST /v1/translate HTTP/1.1\r\nHost: x\r\n":
                        s.sendall(bytes([byte]))
                        time.sleep(1)
                        if time.perf_counter() > end:
                            break
                else:
                    s.sendall(head + b"\x00" * 100)
                answer = s.recv(64)
            got[f"{kind}: {answer[9:12].decode() or 'closed'}"] += 1
        except (OSError, ValueError):  # the server cut the connection while it was sent
            got[f"{kind}: cut off"] += 1


def run(bundle: Path, video: bytes, bomb_bytes: bytes, args, attackers: int, tmp: Path) -> dict:
    port = free_port()
    env = {**os.environ, "SLT_TMP_DIR": str(tmp), "SLT_HEADER_TIMEOUT_S": "5",
           "SLT_READ_TIMEOUT_S": "5", "SLT_MAX_FRAMES": "500"}  # fmt: skip
    cmd = [sys.executable, "-m", "slt_serve.cli", "serve", str(bundle), "--port", str(port),
           "--workers", str(args.workers), "--queue-size", str(args.queue_size),
           "--device", "cpu", "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, server)
        end = time.perf_counter() + args.seconds
        results: list = []
        got: collections.Counter = collections.Counter()
        threads = [threading.Thread(target=good_client, args=(i, url, video, end, results))
                   for i in range(args.clients)]  # fmt: skip
        threads += [threading.Thread(target=attacker, args=(i, port, bomb_bytes, end, got))
                    for i in range(attackers)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.seconds + 120)
        counts = httpx.get(f"{url}/v1/model").json()["requests"]
    finally:
        server.terminate()
        server.wait(30)
    ok = [s for s, _, _ in results if s == 200]
    lat = sorted(d for s, d, _ in results if s == 200)
    per_client = collections.Counter(i for s, _, i in results if s == 200)
    return {
        "requests": len(results),
        "success": len(ok) / max(1, len(results)),
        "p50": statistics.median(lat) if lat else float("nan"),
        "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan"),
        "per_client": [per_client[i] for i in range(args.clients)],
        "attackers": dict(got),
        "server": counts,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, help="bundle to serve (default: a tiny random one)")
    ap.add_argument("--clients", type=int, default=2, help="well-behaved clients")
    ap.add_argument("--attackers", type=int, default=4, help="slowloris/stall/bomb clients")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each run")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--queue-size", type=int, default=4, help="the server's (its default: 4)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bundle = args.bundle or tiny_bundle()
        video = sample_video(tmp / "clip.mp4", 50, 64).read_bytes()
        bomb_bytes = bomb(tmp / "bomb.mkv").read_bytes()
        rows = [(f"{args.clients} clients alone", run(bundle, video, bomb_bytes, args, 0, tmp / "a")),
                (f"{args.clients} clients + {args.attackers} attackers",
                 run(bundle, video, bomb_bytes, args, args.attackers, tmp / "b"))]  # fmt: skip
    table = Table(title=f"hostile load, {bundle.name}, {args.seconds:g} s each, {args.workers} "
                  f"worker(s), queue {args.queue_size}, {os.cpu_count()} CPUs, loopback")  # fmt: skip
    for col in ("run", "good requests", "success", "p50 s", "p99 s", "ok per client (min–max)", "attackers got", "server counters"):  # fmt: skip
        table.add_column(col)
    for name, r in rows:
        server = {k: v for k, v in r["server"].items() if v and k != "client_errors_by_code"}
        table.add_row(name, str(r["requests"]), f"{r['success']:.0%}", f"{r['p50']:.3f}",
                      f"{r['p99']:.3f}", f"{min(r['per_client'])}–{max(r['per_client'])}", ", ".join(f"{k} ×{v}" for k, v in sorted(r["attackers"].items())) or "-",
                      ", ".join(f"{k} {v}" for k, v in server.items()))  # fmt: skip
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
