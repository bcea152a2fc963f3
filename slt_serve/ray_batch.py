"""Batch translation on a Ray cluster: `slt translate --engine ray`.

The same run as `slt_serve.batch` (the same rows in the same results file, resumed
from it, failures as rows, `--shard`), spread over Ray Data instead of threads:

    input paths → decode (CPU tasks) → `Translator` (an actor pool, a GPU each
    where the cluster has GPUs) → rows, written by the driver as they come.

A decode task turns a video into the frames the recogniser reads (the bundle's
frame rate and size), so a GPU actor spends its time on the model; the frames of
one clip travel through Ray's object store as one `.npy` buffer (read back with
`allow_pickle=False`). Where the actors ask for what a decode task asks (one CPU,
no GPU), Ray Data fuses the two stages and each actor decodes its own clips. A video the plain path would refuse by its length goes
to the actor undecoded and is refused there by `Translator.translate` itself, so
its error row reads the same; a two-stream bundle's pose model reads full-size
frames, so those bundles (and any that read other than square frames) decode in
the actor too. Rows travel as JSON text and
paths as bytes, so a file name that is not valid UTF-8 comes back as itself.

Ray is the optional `ray` extra and is imported only here, only when a run
starts. Every node needs slt-serve installed and the bundle and the videos at
the same paths (shared storage); `docs/batch.md` shows how to reach a cluster.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from slt_serve.batch import (
    Plan,
    ResultsFile,
    Summary,
    check_declared,
    error_row,
    plan,
    record,
    result_row,
    translate_one,
)
from slt_serve.bundle import read_manifest
from slt_serve.errors import SltError
from slt_serve.manifest import Manifest
from slt_serve.translator import TranslateOptions, Translator
from slt_serve.video import DecodeLimits, decode_limits, iter_frames, probe

log = logging.getLogger(__name__)

MAX_BLOCKS = 10_000  # an input a block (a decode task a clip) up to this many; then several


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray run goes."""

    address: str | None = None  # a running cluster ("auto", "ray://host:10001"); None: RAY_ADDRESS, else a local one
    actors: int = 1  # Translators in the pool
    cpus_per_actor: float = 1.0
    gpus_per_actor: float | None = None  # None: 1 when the cluster has GPUs and the device is not cpu

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise SltError(f"--workers {self.actors}: the Ray engine needs at least 1 actor")
        if self.cpus_per_actor < 0 or (self.gpus_per_actor or 0) < 0:
            raise SltError("cpus and gpus per actor must be 0 or more")


@dataclass(frozen=True)
class DecodeSpec:
    """What a decode task needs of the bundle: the frames `Translator.translate` would read."""

    fps: float
    size: int  # the square side frames are decoded to
    limit: int  # frames over this: the video is longer than max_seconds
    max_seconds: float
    in_actor: bool  # decode in the actor, by `Translator.translate` itself

    @classmethod
    def of(cls, manifest: Manifest, options: TranslateOptions) -> DecodeSpec:
        """As `Translator.translate` decodes: the frame count limit, and square frames of the
        bundle's size for a single-stream bundle that reads square frames. Any other bundle
        (two-stream: pose reads full frames; another geometry) decodes in the actor."""
        spec = manifest.input
        limit = int(math.ceil(options.max_seconds * spec.fps)) + 1
        square = getattr(spec, "geometry", "square") == "square"
        in_actor = manifest.kind == "two_stream" or not square
        return cls(spec.fps, spec.frame_size, limit, options.max_seconds, in_actor)


def require_ray() -> None:
    """Import Ray now, so a missing `ray` extra is reported before any file is opened."""
    import ray  # noqa: F401


def run(
    bundle: str | os.PathLike,
    inputs: list[str],
    results: ResultsFile,
    *,
    options: TranslateOptions = TranslateOptions(),
    ray_options: RayOptions = RayOptions(),
    retry_errors: bool = False,
    progress: bool | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    limits: DecodeLimits | None = None,
) -> Summary:
    """`batch.run` on Ray: the inputs not yet in `results`, translated by an actor pool."""
    require_ray()
    manifest = read_manifest(bundle)
    planned = plan(inputs, results, retry_errors=retry_errors)
    if not planned.todo:
        return record([], results, planned, progress=False)
    rows = _ray_rows(os.path.abspath(bundle), manifest, planned, options, ray_options, limits, progress)  # fmt: skip
    return record(rows, results, planned, progress=progress, on_row=on_row)


def _ray_rows(
    bundle: str,
    manifest: Manifest,
    planned: Plan,
    options: TranslateOptions,
    ray_options: RayOptions,
    limits: DecodeLimits | None,
    progress: bool | None,
) -> Iterator[dict[str, Any]]:
    import ray
    import ray.data

    if not ray.is_initialized():
        local = ray_options.address is None and "RAY_ADDRESS" not in os.environ
        ray.init(
            address=ray_options.address,
            include_dashboard=False if local else None,
            logging_level=logging.WARNING,
        )
    ray.data.DataContext.get_current().enable_progress_bars = bool(progress)
    gpus = ray_options.gpus_per_actor
    if gpus is None:
        gpus = 1.0 if options.device != "cpu" and ray.cluster_resources().get("GPU", 0) else 0.0
    spec = DecodeSpec.of(manifest, options)
    items = [{"path": os.fsencode(p)} for p in planned.todo]
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), MAX_BLOCKS))
    # decode tasks take a CPU each; an actor asking for the same resources (a CPU, no GPU)
    # gets the decode fused into it by Ray Data, so its frames skip the object store
    ds = ds.map(decode, fn_kwargs={"spec": spec, "limits": limits}, num_cpus=1)
    ds = ds.map(
        TranslateActor,
        fn_constructor_kwargs={"bundle": bundle, "options": options, "limits": limits},
        compute=ray.data.ActorPoolStrategy(size=ray_options.actors),
        num_cpus=ray_options.cpus_per_actor,
        num_gpus=gpus,
    )
    log.info("translating %d input(s) on Ray with %d actor(s), %g GPU each", len(items), ray_options.actors, gpus)  # fmt: skip
    for item in ds.iter_rows():
        yield json.loads(item["row"])


# --- the two stages (run on the cluster) --------------------------------------------------


def decode(item: dict[str, Any], spec: DecodeSpec, limits: DecodeLimits | None) -> dict[str, Any]:
    """A Ray Data row {path} → {path, frames (.npy bytes), duration, decode_ms, row}: `row`
    is the error row of a video that failed to decode, else empty; `frames` empty leaves the
    video to the actor (`Translator.translate`)."""
    path = os.fsdecode(item["path"])
    out = {"path": item["path"], "frames": b"", "duration": 0.0, "decode_ms": 0.0, "row": ""}
    if spec.in_actor:
        return out
    start = time.perf_counter()
    try:
        with decode_limits(limits):
            if limits is not None:
                check_declared(path, limits)
            info = probe(path)
            if info.duration_s > spec.max_seconds:
                return out  # refused in the actor, in Translator.translate's words
            frames = list(iter_frames(path, size=spec.size, fps=spec.fps, max_frames=spec.limit + 1))  # fmt: skip
    except Exception as e:
        out["row"] = json.dumps(error_row(path, e))
        return out
    if not frames or len(frames) > spec.limit:
        return out  # no frames, or more than the header said: the actor's translate judges
    buffer = io.BytesIO()
    np.save(buffer, np.stack(frames))
    out.update(
        frames=buffer.getvalue(),
        duration=info.duration_s,
        decode_ms=1000.0 * (time.perf_counter() - start),
    )
    return out


class TranslateActor:
    """One `Translator` for the life of a Ray actor: decoded rows in, result rows out."""

    def __init__(self, bundle: str, options: TranslateOptions, limits: DecodeLimits | None):
        self.translator = Translator.from_bundle(bundle, options)
        self.limits = limits

    def __call__(self, item: dict[str, Any]) -> dict[str, str]:
        path = os.fsdecode(item["path"])
        if item["row"]:
            return {"row": item["row"]}
        if not item["frames"]:
            return {"row": json.dumps(translate_one(self.translator, path, self.limits))}
        try:
            frames = np.load(io.BytesIO(item["frames"]), allow_pickle=False)
            result = self.translator.recognise_frames(iter(frames), item["duration"])
        except Exception as e:
            return {"row": json.dumps(error_row(path, e))}
        row = result_row(path, result)
        timings = row["timings_ms"]  # decoding ran in the decode task: its time counts here
        timings["decode"] = round(item["decode_ms"], 2)
        timings["total"] = round(timings["total"] + item["decode_ms"], 2)
        return {"row": json.dumps(row)}
