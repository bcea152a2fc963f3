"""Serving under load: N concurrent clients against a real `slt serve` on loopback.

Starts `slt serve BUNDLE` as a subprocess (uvicorn, the installed CLI), waits for
/readyz, then runs `--clients` threads that each POST the sample video to
/v1/translate back to back for `--seconds`, per server configuration
(`--workers`, e.g. 1 and 2, queue = clients so nothing is refused). The
alternative in the same run is the bundle called in-process (`Translator.translate`,
one thread, no HTTP) for the same time: the ratio column is the server's
requests/s over that. Reports requests/s, p50/p99 latency, responses by status
and the server's RSS after a warm-up (2 × clients requests, so every worker thread
has run), half-way and at the end: flat after warm-up means no leak per request.

    python benchmarks/bench_serve.py                      # a tiny random bundle, built here
    python benchmarks/bench_serve.py --bundle B --video clip.mp4 --seconds 60 --clients 8
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

from slt_serve.translator import TranslateOptions, Translator
from slt_serve.video import write_video


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_video(path: Path, frames: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    write_video(path, (np.roll(base, 2 * t, axis=1) for t in range(frames)), fps=25)
    return path


def in_process(bundle: Path, video: Path, seconds: float) -> dict:
    translator = Translator.from_bundle(bundle, TranslateOptions(device="cpu"))
    translator.translate(video)  # warm-up
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        translator.translate(video)
        latencies.append(time.perf_counter() - t)
    return {"requests": len(latencies), "latencies": latencies, "statuses": {200: len(latencies)}}


def serve(bundle: Path, video: Path, seconds: float, clients: int, workers: int, tmp: Path) -> dict:
    port = free_port()
    env = {**os.environ, "SLT_TMP_DIR": str(tmp)}
    cmd = [sys.executable, "-m", "slt_serve.cli", "serve", str(bundle), "--port", str(port),
           "--workers", str(workers), "--queue-size", str(clients), "--device", "cpu",
           "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, server)
        data = video.read_bytes()

        def one(_):
            with httpx.Client(timeout=120) as c:
                c.post(f"{url}/v1/translate", files={"file": (video.name, data, "video/mp4")})

        # warm-up: every worker thread runs once (each grows its own onnxruntime buffers),
        # then the baseline RSS
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, range(2 * clients)))
        proc = psutil.Process(server.pid)
        rss_start = proc.memory_info().rss
        rss_mid = []
        latencies: list[float] = []
        statuses: collections.Counter = collections.Counter()
        lock = threading.Lock()
        end = time.perf_counter() + seconds

        def client():
            with httpx.Client(timeout=120) as c:
                while time.perf_counter() < end:
                    t = time.perf_counter()
                    try:
                        r = c.post(
                            f"{url}/v1/translate", files={"file": (video.name, data, "video/mp4")}
                        )
                        status = r.status_code
                    except httpx.HTTPError as e:
                        status = type(e).__name__
                    with lock:
                        latencies.append(time.perf_counter() - t)
                        statuses[status] += 1

        threads = [threading.Thread(target=client) for _ in range(clients)]
        start = time.perf_counter()
        for th in threads:
            th.start()
        while any(th.is_alive() for th in threads):
            if time.perf_counter() > start + seconds / 2 and not rss_mid:
                rss_mid.append(proc.memory_info().rss)
            time.sleep(0.5)
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - start
        rss_end = proc.memory_info().rss
        left = sorted(p.name for p in tmp.iterdir())
    finally:
        server.terminate()
        server.wait(30)
    return {
        "requests": len(latencies),
        "elapsed": elapsed,
        "latencies": latencies,
        "statuses": dict(statuses),
        "rss": (rss_start, rss_mid[0] if rss_mid else rss_end, rss_end),
        "tmp_left": left,
    }


def wait_ready(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.poll() is not None:
            raise SystemExit(f"slt serve exited: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"slt serve not ready after {timeout} s")


def tiny_bundle() -> Path:
    """The tests' tiny random SingleStream S2T bundle (64² input), from their cache."""
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "tests"))
    import cached_bundles

    return cached_bundles.bundle(root / ".pytest_cache" / "d" / "slt-bundles", "s2t")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="bundle to serve (default: a tiny random one)")
    ap.add_argument("--video", type=Path, help="video to post (default: 2 s of noise at 64²)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", default="1,2", help="server configurations, comma-separated")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp_root:
        tmp_root = Path(tmp_root)
        bundle = args.bundle or tiny_bundle()
        video = args.video or sample_video(tmp_root / "clip.mp4", 50, 64)
        rows = [("in-process, 1 thread, no HTTP", in_process(bundle, video, args.seconds))]
        for w in (int(x) for x in args.workers.split(",")):
            spool = tmp_root / f"spool{w}"
            spool.mkdir()
            res = serve(bundle, video, args.seconds, args.clients, w, spool)
            rows.append((f"slt serve, {w} worker(s), {args.clients} clients", res))

    base_rps = rows[0][1]["requests"] / args.seconds
    table = Table(title=f"serving {bundle.name}, {args.seconds:g} s each, {os.cpu_count()} CPUs")
    for col in ("setup", "requests/s", "ratio", "p50 ms", "p99 ms", "responses",
                "RSS start MB", "RSS half-way MB", "RSS end MB", "tmp files left"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("setup", "responses") else "right")
    for name, r in rows:
        lat = sorted(r["latencies"])
        rps = r["requests"] / r.get("elapsed", args.seconds)
        rss = r.get("rss")
        table.add_row(
            name,
            f"{rps:.2f}",
            f"{rps / base_rps:.2f}",
            f"{statistics.median(lat) * 1e3:.0f}",
            f"{lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3:.0f}",
            ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items(), key=str)),
            f"{rss[0] / 2**20:.0f}" if rss else "-",
            f"{rss[1] / 2**20:.0f}" if rss else "-",
            f"{rss[2] / 2**20:.0f}" if rss else "-",
            str(len(r["tmp_left"])) if "tmp_left" in r else "-",
        )
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
