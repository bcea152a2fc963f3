"""Live translation: the synthetic corpus's test clips streamed at real time to `slt serve`'s
/v1/stream, against the same bundle translating offline.

Starts `slt serve BUNDLE` (default: the sample model) as a subprocess on loopback, renders
the first `--clips` test clips of the synthetic corpus the sample model was trained on
(`slt data synth`'s default options: the sample's own test clips are its first two), and
streams each at real time as JPEG frames (`slt_serve.stream_client`). Reports:

- agreement: the share of streams whose final (gloss, text) equals `translate_frames` on
  the same decoded JPEG frames (what the server received), and on the raw frames;
- latency from a gloss's end in the video (its span in the offline result) to its first
  appearance in a partial message (any span of that gloss overlapping the offline span by
  time, stable or pending), and to its appearance as stable; p50 / p99 over all glosses;
- the final's delay after the client's `end`.

    python benchmarks/bench_stream.py                   # 6 clips, the sample model
    python benchmarks/bench_stream.py --clips 20 --bundle B
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_serve import free_port, wait_ready
from rich.console import Console
from rich.table import Table

from slt_serve.sample_model import sample_videos
from slt_serve.stream_client import encode_frame, stream_video
from slt_serve.streaming import HEADER, decode_image
from slt_serve.translator import TranslateOptions, Translator
from slt_training.data.synth.corpus import options_for, plan_corpus, render_frames, render_keypoints

SLACK_S = 0.3  # a partial's span counts as the offline gloss when they overlap within this


def test_clips(count: int):
    """(name, RGB frames, fps) of the synthetic corpus's first `count` test clips."""
    opts = options_for("cpu")
    plans = [p for p in plan_corpus(opts) if p.split == "test"][:count]
    for plan in plans:
        kp, place = render_keypoints(plan, opts)
        yield plan.name, np.stack(list(render_frames(plan, opts, kp, place))), opts.fps


def first_seen(span: dict, partials, key: tuple[str, ...]) -> float | None:
    """Arrival time of the first partial showing `span`'s gloss (in the lists `key`)."""
    for arrived, m in partials:
        for other in (x for k in key for x in m[k]):
            overlap = min(other["end_s"], span["end_s"]) - max(other["start_s"], span["start_s"])  # fmt: skip
            if other["gloss"] == span["gloss"] and overlap > -SLACK_S:
                return arrived
    return None


def one_clip(url: str, translator: Translator, frames: np.ndarray, fps: float) -> dict:
    run = stream_video(url, [(i / fps, f) for i, f in enumerate(frames)], fps)
    decoded = np.stack([decode_image(encode_frame(0, f)[HEADER.size :]) for f in frames])
    same = translator.translate_frames(decoded, fps)
    raw = translator.translate_frames(frames, fps)
    finals = run.finals
    got = (" ".join(f["gloss"] for f in finals), " ".join(f["text"] for f in finals))
    lat_any, lat_stable, missed = [], [], 0
    duration, compute = len(frames) / fps, same.timings_ms["total"] / 1000
    offline = [duration - s.end_s + compute for s in same.gloss_spans]  # upload after the clip
    for span in same.to_dict()["gloss_spans"]:
        seen = first_seen(span, run.partials, ("glosses", "pending"))
        stable = first_seen(span, run.partials, ("glosses",))
        if seen is None:
            missed += 1
            continue
        lat_any.append(seen - span["end_s"])
        if stable is not None:
            lat_stable.append(stable - span["end_s"])
    final_at = max(t for t, m in run.messages if m["type"] == "final")
    return {
        "same": got == (same.gloss, same.text),
        "raw": got == (raw.gloss, raw.text),
        "sentences": len(finals),
        "any": lat_any,
        "offline": offline,
        "offline_final": compute,
        "stable": lat_stable,
        "missed": missed,
        "glosses": len(same.gloss_spans),
        "final_delay": final_at - run.end_sent_s,
        "errors": len(run.errors),
    }


def pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.2f}" if values else "–"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--bundle", default=str(sample_videos()[0].parent.parent / "bundle"))
    args = ap.parse_args()
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "slt_serve.cli", "serve", args.bundle, "--port", str(port), "--device", "cpu", "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        translator = Translator.from_bundle(args.bundle, TranslateOptions(device="cpu"))
        rows = []
        for name, frames, fps in test_clips(args.clips):
            start = time.perf_counter()
            rows.append(one_clip(f"ws://127.0.0.1:{port}/v1/stream", translator, frames, fps))
            print(f"{name}: {len(frames) / fps:.1f} s streamed in {time.perf_counter() - start:.1f} s", file=sys.stderr)  # fmt: skip
    finally:
        server.terminate()
        server.wait(30)
    report(rows, Path(args.bundle).name, translator.name)


def report(rows: list[dict], bundle: str, model: str) -> None:
    n = len(rows)
    lat_any = [x for r in rows for x in r["any"]]
    lat_stable = [x for r in rows for x in r["stable"]]
    delays = [r["final_delay"] for r in rows]
    offline = [x for r in rows for x in r["offline"]]
    offline_final = [r["offline_final"] for r in rows]
    glosses = sum(r["glosses"] for r in rows)
    table = Table(title=f"/v1/stream at real time vs offline, {model}, {n} synthetic test clips, {os.cpu_count()} shared CPUs")  # fmt: skip
    for col in ("measure", "stream", "offline translate_frames after the clip", "note"):
        table.add_column(col)
    table.add_row("final = translate_frames(same decoded JPEG frames)", f"{sum(r['same'] for r in rows)}/{n}", "–", "gloss and text identical")  # fmt: skip
    table.add_row("final = translate_frames(raw frames)", f"{sum(r['raw'] for r in rows)}/{n}", "–", "JPEG q90 in between")  # fmt: skip
    table.add_row("sentences per clip (finals)", f"{np.mean([r['sentences'] for r in rows]):.2f}", "1", "a pause splits a clip")  # fmt: skip
    table.add_row("gloss end → first partial showing it, p50 / p99 s", f"{pct(lat_any, 50)} / {pct(lat_any, 99)}", f"{pct(offline, 50)} / {pct(offline, 99)}", f"{len(lat_any)} of {glosses} glosses seen")  # fmt: skip
    table.add_row("gloss end → shown as stable, p50 / p99 s", f"{pct(lat_stable, 50)} / {pct(lat_stable, 99)}", "", f"{len(lat_stable)} of {glosses}")  # fmt: skip
    table.add_row("final after the client's end, p50 / p99 s", f"{pct(delays, 50)} / {pct(delays, 99)}", f"{pct(offline_final, 50)} / {pct(offline_final, 99)}", "offline: its translation time (no upload)")  # fmt: skip
    table.add_row("error messages", str(sum(r["errors"] for r in rows)), "", "")
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
