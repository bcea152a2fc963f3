"""`slt translate` engines side by side: threads (`--workers 1`, `--workers 2`) against Ray
(`--engine ray`: decode tasks and 1 or 2 Translator actors on a local cluster), same inputs.

Inputs: `--clips` copies of the sample model's clips (`slt_serve/sample_model/samples`),
each under its own name, translated by the sample bundle on the CPU, each onnxruntime
graph on `--threads` threads. Every engine writes a fresh results file; clips/s is the
inputs over the run's wall time, the model's loading included (the Ray actors load it
too); the Ray cluster's own start is timed apart, once. "same rows" compares each engine's
glosses, texts and spans with `--workers 1`'s.

    python benchmarks/bench_batch.py [--clips 24] [--cpus 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from slt_serve import batch
from slt_serve.sample_model import bundle_path, sample_videos
from slt_serve.translator import TranslateOptions, Translator


def make_inputs(folder: Path, n: int) -> list[str]:
    clips = sample_videos()
    paths = []
    for i in range(n):
        path = folder / f"clip{i:04d}.mp4"
        shutil.copy(clips[i % len(clips)], path)
        paths.append(str(path))
    return paths


def content(path: Path) -> dict[str, tuple]:
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return {r["path"]: (r["ok"], r.get("gloss"), r.get("text"), json.dumps(r.get("gloss_spans"))) for r in rows}  # fmt: skip


def timed(run: Callable[[batch.ResultsFile], batch.Summary], out: Path) -> tuple[float, batch.Summary]:  # fmt: skip
    results = batch.ResultsFile(out, "jsonl")
    start = time.perf_counter()
    try:
        summary = run(results)
    finally:
        results.close()
    return time.perf_counter() - start, summary


def local(options: TranslateOptions, workers: int, paths: list[str]):
    def run(results):
        translator = Translator.from_bundle(bundle_path(), options)
        return batch.run(translator, paths, results, workers=workers, progress=False)

    return run


def on_ray(options: TranslateOptions, actors: int, cpus: float, paths: list[str]):
    from slt_serve import ray_batch

    ray_options = ray_batch.RayOptions(actors=actors, cpus_per_actor=cpus)

    def run(results):
        return ray_batch.run(
            bundle_path(), paths, results, options=options, ray_options=ray_options, progress=False
        )

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--cpus", type=int, default=2, help="the local Ray cluster's CPUs")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per graph")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    options = TranslateOptions(device="cpu", threads=args.threads)
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_inputs(tmp, args.clips)
        engines = [
            ("threads, --workers 1", local(options, 1, paths)),
            ("threads, --workers 2", local(options, 2, paths)),
        ]
        import ray

        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
        ray_start = time.perf_counter() - start
        engines += [
            ("ray, 1 actor (1 CPU, decode fused into it)", on_ray(options, 1, 1.0, paths)),
            ("ray, 2 actors (0.5 CPU each) + decode tasks", on_ray(options, 2, 0.5, paths)),
        ]
        table = Table(title=f"slt translate, {args.clips} sample clips, {os.cpu_count()} cores, {args.threads} onnxruntime thread(s) a graph")  # fmt: skip
        for col in ("engine", "wall s", "clips/s", "translated", "same rows"):
            table.add_column(col, justify="left" if col == "engine" else "right")
        reference = None
        for i, (name, run) in enumerate(engines):
            out = tmp / f"r{i}.jsonl"
            wall, summary = timed(run, out)
            rows = content(out)
            reference = reference or rows
            table.add_row(
                name, f"{wall:.1f}", f"{args.clips / wall:.2f}", str(summary.translated),
                "yes" if rows == reference else "NO",
            )  # fmt: skip
        ray.shutdown()
    console.print(table)
    console.print(f"the local Ray cluster took {ray_start:.1f} s to start (not in the rows)")


if __name__ == "__main__":
    main()
