"""GPU serving and S2G training at a real model's size (issue 18): one script, one command.

    python benchmarks/bench_gpu.py --prepare                 # first: export, corpus (CPU work)
    python benchmarks/bench_gpu.py                           # real size on the GPU: train + serve
    python benchmarks/bench_gpu.py --part serve|train        # one half
    python benchmarks/bench_gpu.py --size toy --device cpu   # seconds, on any CPU (its test)

On the lent GPU machine (no network there): onnxruntime-gpu and the other missing packages
travel as wheels made here by `bash benchmarks/gpu_wheels.sh`, the onnxruntime-gpu wheel in
six parts (alone it is 4× the 64 MiB a call carries); then, there, one call each:
`bash benchmarks/gpu_device.sh part` (× 6, a part carried each time), `... install &&
... prepare` (the wheels; the export and corpus, CPU work), `... measure` (this script;
its log and JSON into $OUT). docs/benchmarks.md, "On a GPU", has the calls and their costs.

Serving. The bundle: `--size real` exports (or finds in `--cache`) the real-size bundle of
`benchmarks/runtime_real.py` (`build`: S3D full width at 224², visual head 512, ~1 100
glosses, mBART of mbart-large-cc25's shape 12 + 12 layers d 1024, beam 5, max length 60,
random weights; its fp32 one is served here); `--size toy` the shipped sample model. One
`Translator` per variant serves a clip of `--seconds` of 224² frames (a bright square moving
on noise, given as frames: video decoding is not timed) from 1, 4 and 16 client threads at
once (`--concurrency`), each translating `--rounds` clips. Variants, each on `--device`:

* plain: `Translator.from_bundle(device=...)`, every graph on onnxruntime's CUDA provider;
* io-binding: the same, with the decoder's cross-attention keys/values and source mask
  bound once per clip in device memory (onnxruntime I/O binding) instead of copied in at
  each of the beam search's steps; the cache still goes through the host, where the beam
  search reorders it;
* fp16 + io-binding: the three graphs converted to float16 with float32 inputs and outputs
  (onnxruntime.transformers.float16; an int8 bundle's quantised operators stay as they
  are), cached in `--cache`. There is no fp16 export (`slt export model` writes fp32
  or int8): this conversion stands in for one, to show what it would give.

Columns: real-time factor (a clip's latency over its duration, mean), clips/s and seconds
of video per second (throughput), the stage times at one client, the ratio of throughput to
the plain variant at one client, and whether glosses and text equal the plain variant's.

Training. `configs/phoenix-2014t/s2g_single.yaml` and `s2g_two.yaml` as they are (224²
input, frame caches of 256² and 224²), the model built by the S2G stage's own
`build_model` (random weights, not the Kinetics ones), trained on a synthetic corpus that
`slt data synth` makes in `--cache` (rendered at 256², frame cache and vocabulary by the
data commands' own functions), steps in bf16 autocast (`--precision`), the stage's loss
(`run_model`) and optimizer (`make_optimizer`), the config's batch size. For each model and
loader worker count (the config's `num_workers`, and every core):

* loader alone: frames/s the `SignClips` loader delivers (the training augmentation, collate);
* GPU alone: ms per clip of a training step on one batch kept on the device (the GPU's pace),
  and the frames/s it would need;
* together: ms per clip when the loader feeds the steps, and the GPU's utilisation sampled
  by NVML every 50 ms meanwhile (`n/a` without an NVIDIA GPU);
* loader / GPU: the ratio of the loader's frames/s to what the GPU consumes: under 1, the
  loader starves the GPU.

`--size toy` runs the same code at a tiny size (sample bundle, 32² corpus, width 0.25).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONFIGS = {
    "SingleStream": REPO / "configs" / "phoenix-2014t" / "s2g_single.yaml",
    "TwoStream": REPO / "configs" / "phoenix-2014t" / "s2g_two.yaml",
}
console = Console(width=160)
# operators of an int8 bundle (dynamic quantisation) that stay float32 in `fp16_graphs`
INT8_OPS = ("DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DequantizeLinear")


@dataclass(frozen=True)
class Plan:
    """What one `--size` runs."""

    seconds: float  # clip length served
    concurrency: tuple[int, ...]  # client threads at once, one level per row
    rounds: int  # clips each client translates at each level
    synth: dict  # `options_for("cpu", **synth)`: the training corpus
    overrides: tuple[str, ...]  # on top of the phoenix-2014t configs
    steps: int  # timed training steps per measurement
    warmup: int  # untimed steps first
    workers: tuple[int, ...] = ()  # loader worker counts (empty: the config's, every core)


PLANS = {
    # ~40 steps: a few seconds of GPU work, several NVML periods (1/6 s) sampled
    "real": Plan(10.0, (1, 4, 16), 2, dict(clips=80, glosses=300, size=256, signers=6), (), 40, 5),
    "toy": Plan(
        2.0,
        (1, 2),
        1,
        dict(clips=6, glosses=16, size=32, signers=2, seed=3),
        (
            "data.frame_size=32",
            "data.input_size=32",
            "model.width=0.25",
            "model.hidden_size=32",
            "model.ff_size=64",
            "model.pretrained_s3d=null",
            "model.pretrained_keypoint_s3d=null",
            "model.frozen_blocks=0",
            "augmentation.max_frames=48",
        ),
        2,
        1,
        (1,),
    ),
}


# --- the machine ------------------------------------------------------------------------


def describe_machine(device: str) -> str:
    """One line naming the GPU (or CPU), torch, onnxruntime and its providers."""
    import onnxruntime as ort
    import torch

    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        name = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    else:
        name = f"CPU {platform.processor() or platform.machine()}"
    return (
        f"{name}; {os.cpu_count()} cores; torch {torch.__version__}; onnxruntime "
        f"{ort.__version__} ({', '.join(ort.get_available_providers())})"
    )


class GpuUtilisation:
    """The GPU's utilisation (%), sampled by NVML every `period` s in a thread while in `with`;
    `mean` is None where NVML or an NVIDIA GPU is missing."""

    def __init__(self, period: float = 0.05) -> None:
        self.period, self.samples = period, []
        self._stop = threading.Event()
        self._handle = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # no NVML library, no driver, no GPU: reported as n/a
            self._handle = None

    def _sample(self) -> None:
        while not self._stop.wait(self.period):
            self.samples.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)

    def __enter__(self) -> GpuUtilisation:
        if self._handle is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._stop.set()
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None


# --- serving ----------------------------------------------------------------------------


def serving_bundle(size: str, cache: Path) -> Path:
    """The bundle served: runtime_real's fp32 real-size bundle, or the shipped sample model."""
    if size == "toy":
        from slt_serve.sample_model import bundle_path

        return bundle_path()
    sys.path.insert(0, str(HERE))
    from runtime_real import build

    started = time.perf_counter()
    bundles = build(cache / "bundles", 25.0)
    console.print(f"real-size bundles ready in {time.perf_counter() - started:.0f} s")
    return bundles["fp32"]


def fp16_graphs(bundle: Path, cache: Path) -> Path:
    """float16 copies of the bundle's graphs (float32 inputs and outputs kept), in a folder of
    `cache` named after the bundle's manifest."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    from slt_serve.bundle import DECODER, ENCODER, S2G

    out = cache / f"fp16-{hashlib.sha256((bundle / 'manifest.json').read_bytes()).hexdigest()[:12]}"
    out.mkdir(parents=True, exist_ok=True)
    for name in (S2G, ENCODER, DECODER):
        if not (out / name).is_file():
            model = convert_float_to_float16(
                onnx.load(str(bundle / name)),
                keep_io_types=True,
                op_block_list=[*DEFAULT_OP_BLOCK_LIST, *INT8_OPS],
            )
            onnx.save(model, str(out / f"{name}.part"))
            os.replace(out / f"{name}.part", out / name)
    return out


def bound_seq2seq(seq2seq, device: str):
    """`seq2seq` as a `BoundSeq2Seq` (the same sessions), binding on `device` ("cuda"/"cpu")."""
    from slt_serve.seq2seq import Seq2Seq

    class BoundSeq2Seq(Seq2Seq):
        """The decoder reads the cross-attention keys/values and the source mask from
        `device` memory, bound once per call, instead of receiving them at every step."""

        def generate_scored(self, source, mask, settings, encoded=None):
            import onnxruntime as ort

            from slt_serve.beam_search import beam_search_scored

            _, keys, values = encoded if encoded is not None else self.encode(source, mask)
            beams = settings.num_beams
            cross = self.cross_inputs(mask, keys, values, beams)
            binding = self.decoder.io_binding()
            held = [ort.OrtValue.ortvalue_from_numpy(a, device, 0) for a in cross.values()]
            for name, value in zip(cross, held):
                binding.bind_ortvalue_input(name, value)
            feeding = self.feeding

            def step(tokens, past_keys, past_values):
                binding.bind_cpu_input("input_ids", np.ascontiguousarray(tokens))
                for name, value in feeding.past(past_keys, past_values).items():
                    binding.bind_cpu_input(name, np.ascontiguousarray(value))
                for name in feeding.outputs:
                    binding.bind_output(name)
                self.decoder.run_with_iobinding(binding)
                return feeding.unpack(binding.copy_outputs_to_cpu())

            empty = feeding.empty(source.shape[0] * beams)
            return beam_search_scored(step, source.shape[0], empty, settings)

    s = seq2seq
    return BoundSeq2Seq(s.encoder, s.decoder, s.cache, s.max_source, s.suffix)


def open_variant(plain, variant: str, device: str, threads: int, cache: Path):
    """The `plain` `Translator` as `variant` ("plain", "io-binding", "fp16 + io-binding"):
    a shallow copy sharing its sessions, with the graphs or the decoder's feeding replaced."""
    from slt_serve.onnx_session import open_session, providers_for
    from slt_serve.s2g import S2GRunner
    from slt_serve.seq2seq import Seq2Seq

    t = copy.copy(plain)
    if variant.startswith("fp16"):
        graphs, providers = fp16_graphs(plain.bundle.path, cache), providers_for(device)
        t.s2g = S2GRunner(open_session(graphs / "s2g.onnx", providers, threads), t.spec)
        s = t.seq2seq
        t.seq2seq = Seq2Seq(
            open_session(graphs / "encoder.onnx", providers, threads),
            open_session(graphs / "decoder.onnx", providers, threads),
            s.cache, s.max_source, s.suffix,
        )  # fmt: skip
    if "io-binding" in variant:
        t.seq2seq = bound_seq2seq(t.seq2seq, device)
    return t


def moving_square(seconds: float, fps: float, size: int) -> np.ndarray:
    """(T, size, size, 3) uint8: a bright square moving on noise (runtime_real's clip)."""
    frames = int(round(seconds * fps))
    rng = np.random.default_rng(1)
    video = rng.integers(0, 80, (frames, size, size, 3), dtype=np.uint8)
    side = size * 2 // 7
    for t in range(frames):
        x = (3 * t) % (size - side)
        video[t, size * 5 // 14 : size * 5 // 14 + side, x : x + side] = 230
    return video


def serve_level(translator, frames: np.ndarray, fps: float, clients: int, rounds: int) -> dict:
    """`clients` threads each translating the clip `rounds` times on one `Translator`."""

    def one(_):
        started = time.perf_counter()
        result = translator.translate_frames(frames, fps)
        return time.perf_counter() - started, result

    clips = clients * rounds
    with GpuUtilisation() as gpu, ThreadPoolExecutor(clients) as pool:
        started = time.perf_counter()
        done = list(pool.map(one, range(clips)))
        wall = time.perf_counter() - started
    seconds = len(frames) / fps
    first = done[0][1]
    return {
        "clients": clients,
        "rtf": statistics.fmean(d for d, _ in done) / seconds,
        "clips_s": clips / wall,
        "video_s": clips * seconds / wall,
        "timings": first.timings_ms,
        "output": (first.gloss, first.text),
        "util": gpu.mean,
    }


def providers_of(translator) -> str:
    """The provider each graph runs on first (onnxruntime falls back to the CPU silently where
    the CUDA provider's libraries do not load), e.g. "CUDA" or "CPU/CUDA"."""
    sessions = (translator.s2g.session, translator.seq2seq.encoder, translator.seq2seq.decoder)
    names = {s.get_providers()[0].replace("ExecutionProvider", "") for s in sessions}
    return "/".join(sorted(names))


def serve(args, plan: Plan) -> list[dict]:
    """Rows of every variant × concurrency level."""
    from slt_serve.translator import TranslateOptions, Translator

    bundle = serving_bundle(args.size, args.cache)
    if args.device == "cuda":  # onnxruntime-gpu's CUDA/cuDNN from the nvidia-* wheels torch uses
        import onnxruntime as ort

        try:
            getattr(ort, "preload_dlls", lambda: None)()
        except Exception as e:  # torch has loaded them already where it runs on the GPU
            console.print(f"onnxruntime.preload_dlls: {e}")
    options = TranslateOptions(device=args.device, threads=args.threads)
    plain = Translator.from_bundle(bundle, options)
    if args.device == "cuda" and providers_of(plain) != "CUDA":
        raise SystemExit(
            f"error: the graphs run on {providers_of(plain)}, not CUDA: onnxruntime-gpu's CUDA "
            "provider did not load (its CUDA 13 / cuDNN 9 libraries); nothing served"
        )
    variants = ["plain", "io-binding", "fp16 + io-binding"]
    rows = []
    for variant in variants:
        try:
            t = open_variant(plain, variant, args.device, args.threads, args.cache)
            if variant == variants[-1]:
                plain = None  # its sessions (and their GPU memory) go once no variant needs them
            frames = moving_square(plan.seconds, t.spec.fps, t.spec.frame_size)
            t.translate_frames(frames, t.spec.fps)  # warm-up at the clip's shapes (cuDNN search)
            for clients in plan.concurrency:
                row = serve_level(t, frames, t.spec.fps, clients, plan.rounds)
                rows.append({"variant": variant, "provider": providers_of(t), **row})
                console.print(f"  {variant}, {clients} client(s): RTF {row['rtf']:.3f}")
        except Exception as e:  # a variant that fails (e.g. an op without fp16) is a row too
            rows.append({"variant": variant, "error": f"{type(e).__name__}: {e}"[:200]})
        finally:
            t = None  # the sessions go before the next variant loads
    return rows


def serving_table(rows: list[dict], seconds: float) -> Table:
    table = Table(title=f"Serving a {seconds:g} s clip (frames given, decoding not timed)")
    for name in ("variant", "clients", "RTF", "clips/s", "video s/s", "× plain@1",
                 "s2g / enc / dec ms @1", "GPU util %", "same output"):  # fmt: skip
        table.add_column(name, justify="left" if name == "variant" else "right")
    ok = [r for r in rows if "error" not in r]
    base = ok[0] if ok else None
    stages = {}
    for r in rows:
        if "error" in r:
            table.add_row(r["variant"], "", "failed: " + r["error"], *[""] * 6)
            continue
        if r["clients"] == min(x["clients"] for x in ok):
            s = r["timings"]
            stages[r["variant"]] = f"{s['s2g']:.0f} / {s['encoder']:.0f} / {s['decoder']:.0f}"
        table.add_row(
            f"{r['variant']} ({r['provider']})",
            str(r["clients"]),
            f"{r['rtf']:.3f}",
            f"{r['clips_s']:.2f}",
            f"{r['video_s']:.1f}",
            f"{r['clips_s'] / base['clips_s']:.2f}",
            stages.pop(r["variant"], ""),
            "n/a" if r["util"] is None else f"{r['util']:.0f}",
            "yes" if r["output"] == base["output"] else "no",
        )
    return table


# --- training ---------------------------------------------------------------------------


def corpus(cache: Path, plan: Plan, workers: int) -> Path:
    """The synthetic corpus (videos, keypoints, vocabulary) in `cache`, made if missing."""
    from slt_training.data.annotations import load_split
    from slt_training.data.synth.corpus import generate, options_for
    from slt_training.data.vocab import build_vocab

    root = cache / f"synth-{plan.synth['size']}"
    if not (root / "gloss_vocab.json").is_file():
        started = time.perf_counter()
        generate(root, options_for("cpu", **plan.synth), workers=workers)
        build_vocab(load_split(root, "train")).save(root / "gloss_vocab.json")
        console.print(f"synthetic corpus in {root}: {time.perf_counter() - started:.0f} s")
    return root


def s2g_config(model_name: str, root: Path, plan: Plan, run_dir: Path):
    """The phoenix-2014t config of `model_name` on the corpus at `root`, its frame cache made
    if missing."""
    from slt_training.config import S2GConfig, load_config
    from slt_training.data.frames import cache_frames

    overrides = [f"data.root={root}", f"run_dir={run_dir}", *plan.overrides]
    cfg = load_config(CONFIGS[model_name], S2GConfig, overrides)
    if not (root / "frames" / str(cfg.data.frame_size) / "cache.json").is_file():
        started = time.perf_counter()
        cache_frames(root, size=cfg.data.frame_size, workers=os.cpu_count(), progress=False)
        seconds = time.perf_counter() - started
        console.print(f"frame cache {cfg.data.frame_size}² in {root}: {seconds:.0f} s")
    return cfg


def training_setup(model_name: str, root: Path, plan: Plan, device: str, run_dir: Path):
    """The config, its model (on `device`, train mode), train set and optimizer."""
    from slt_training.data.s2g_data import SignClips, load_vocab
    from slt_training.stages.s2g import build_model
    from slt_training.trainer import make_optimizer

    cfg = s2g_config(model_name, root, plan, run_dir)
    vocab = load_vocab(root)
    model, options = build_model(cfg, len(vocab), pretrained=False)
    model = model.to(device).train()
    train_set = SignClips(root, cfg.data.train_split, vocab, options)
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg.training)
    return cfg, model, train_set, optimizer


def batches(train_set, batch_size: int, workers: int, seed: int, pin: bool):
    """Training batches without end, epoch after epoch, from a `SignClips` DataLoader."""
    from torch.utils.data import DataLoader

    from slt_training.data.s2g_data import EpochSampler, collate

    sampler = EpochSampler(len(train_set), seed)
    loader = DataLoader(
        train_set, batch_size=batch_size, sampler=sampler, collate_fn=collate,
        num_workers=workers, pin_memory=pin, persistent_workers=workers > 0,
    )  # fmt: skip
    for epoch in itertools.count():
        sampler.set_epoch(epoch)
        yield from loader


def frames_in(batch) -> int:
    return int(batch.lengths.sum())


def train_step(model, optimizer, batch, device: str, precision: str) -> None:
    """One step as the trainer takes it: loss under autocast, backward, optimizer step."""
    import torch

    from slt_training.stages.s2g import run_model

    dtype = torch.bfloat16 if precision == "bf16" else None
    with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
        loss = run_model(model, batch, targets=True).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def loader_rate(stream, workers: int, count: int) -> float:
    """Frames/s of `count` batches from `stream`, timed once the batches its workers made
    while the first was awaited (2 each, DataLoader's prefetch) are taken."""
    for _ in itertools.islice(stream, 1 + 2 * workers):
        pass
    frames = 0
    started = time.perf_counter()
    for batch in itertools.islice(stream, count):
        frames += frames_in(batch)
    return frames / (time.perf_counter() - started)


def gpu_pace(model, optimizer, batch, args, plan: Plan) -> tuple[float, float]:
    """ms per clip and frames/s of training steps on one batch kept on the device."""
    batch = batch.to(args.device)
    for _ in range(plan.warmup):
        train_step(model, optimizer, batch, args.device, args.precision)
    synchronize(args.device)
    started = time.perf_counter()
    for _ in range(plan.steps):
        train_step(model, optimizer, batch, args.device, args.precision)
    synchronize(args.device)
    seconds = time.perf_counter() - started
    return 1000 * seconds / (plan.steps * len(batch.names)), plan.steps * frames_in(batch) / seconds


def fed_steps(model, optimizer, stream, args, plan: Plan) -> tuple[float, float | None]:
    """ms per clip of steps fed by the loader, and the GPU's mean utilisation meanwhile."""
    for batch in itertools.islice(stream, plan.warmup):
        train_step(model, optimizer, batch.to(args.device, non_blocking=True), args.device,
                   args.precision)  # fmt: skip
    synchronize(args.device)
    clips = 0
    with GpuUtilisation() as gpu:
        started = time.perf_counter()
        for batch in itertools.islice(stream, plan.steps):
            train_step(model, optimizer, batch.to(args.device, non_blocking=True), args.device,
                       args.precision)  # fmt: skip
            clips += len(batch.names)
        synchronize(args.device)
        seconds = time.perf_counter() - started
    return 1000 * seconds / clips, gpu.mean


def train(args, plan: Plan) -> list[dict]:
    """Rows of each model × loader worker count."""
    import torch

    root = corpus(args.cache, plan, os.cpu_count() or 1)
    rows = []
    for name in CONFIGS:
        with tempfile.TemporaryDirectory() as run_dir:
            cfg, model, train_set, optimizer = training_setup(
                name, root, plan, args.device, Path(run_dir)
            )
            t = cfg.training
            pin = args.device == "cuda"
            counts = args.workers or plan.workers or sorted({t.num_workers, os.cpu_count() or 1})
            one = next(batches(train_set, t.batch_size, 0, t.seed, False))
            pace_ms, pace_fps = gpu_pace(model, optimizer, one, args, plan)
            for workers in counts:
                stream = batches(train_set, t.batch_size, workers, t.seed, pin)
                loader_fps = loader_rate(stream, workers, max(plan.steps, 8 * max(workers, 1)))
                fed_ms, util = fed_steps(model, optimizer, stream, args, plan)
                stream.close()
                rows.append({
                    "model": name, "workers": workers, "batch": t.batch_size,
                    "frames_per_clip": frames_in(one) / len(one.names),
                    "loader_fps": loader_fps, "pace_ms": pace_ms, "pace_fps": pace_fps,
                    "fed_ms": fed_ms, "util": util,
                })  # fmt: skip
                console.print(f"  {name}, {workers} worker(s): {fed_ms:.0f} ms/clip fed")
            if args.device == "cuda":
                rows[-1]["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
                torch.cuda.reset_peak_memory_stats()
            del model, optimizer
    return rows


def training_table(rows: list[dict], precision: str) -> Table:
    table = Table(title=f"S2G training steps, {precision}, the phoenix-2014t configs")
    for name in ("model", "loader workers", "batch", "frames/clip", "loader frames/s",
                 "step alone ms/clip", "steps need frames/s", "fed ms/clip", "fed / alone",
                 "GPU util %", "loader / steps", "peak GiB"):  # fmt: skip
        table.add_column(name, justify="left" if name == "model" else "right")
    for r in rows:
        util = "n/a" if r["util"] is None else f"{r['util']:.0f}"
        table.add_row(
            r["model"],
            str(r["workers"]),
            str(r["batch"]),
            f"{r['frames_per_clip']:.0f}",
            f"{r['loader_fps']:.0f}",
            f"{r['pace_ms']:.1f}",
            f"{r['pace_fps']:.0f}",
            f"{r['fed_ms']:.1f}",
            f"{r['fed_ms'] / r['pace_ms']:.2f}",
            util,
            f"{r['loader_fps'] / r['pace_fps']:.2f}",
            f"{r['peak_gib']:.1f}" if "peak_gib" in r else "",
        )
    return table


def prepare(args, plan: Plan) -> None:
    """Everything the measurements read, made on the CPU and kept in `--cache`: the corpus,
    its frame caches, the bundle(s) and the fp16 graphs; one call of its own on a
    lent machine, so that the measuring call fits in its time."""
    if args.part in ("all", "train"):
        root = corpus(args.cache, plan, os.cpu_count() or 1)
        for name in CONFIGS:
            s2g_config(name, root, plan, args.cache / "runs")
    if args.part in ("all", "serve"):
        bundle = serving_bundle(args.size, args.cache)
        started = time.perf_counter()
        fp16_graphs(bundle, args.cache)
        console.print(f"fp16 graphs in {time.perf_counter() - started:.0f} s")


# --- the command --------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(PLANS), help="default: real on a GPU, else toy")
    p.add_argument("--device", choices=("cuda", "cpu"), help="default: cuda where torch sees one")
    p.add_argument("--part", choices=("all", "serve", "train"), default="all")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bench-gpu",
                   help="bundles, fp16 graphs and the synthetic corpus, reused by a later run")  # fmt: skip
    p.add_argument("--seconds", type=float, help="clip length served (default: the size's)")
    p.add_argument("--concurrency", help="client counts, e.g. 1,4,16 (default: the size's)")
    p.add_argument("--rounds", type=int, help="clips per client at each level")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads")
    p.add_argument("--workers", help="loader worker counts, e.g. 4,16 (default: config's, cores)")
    p.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    p.add_argument("--json", type=Path, help="also write the rows here, as JSON")
    p.add_argument("--prepare", action="store_true",
                   help="only make the corpus, bundles and fp16 graphs in --cache (CPU work)")  # fmt: skip
    args = p.parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.size = args.size or ("real" if args.device == "cuda" else "toy")
    if args.workers:
        args.workers = [int(w) for w in args.workers.split(",")]
    return args


def measure(args, plan: Plan, machine: str) -> None:
    """Training first (no export to wait for), then serving; each table printed when its part
    ends, then all again together; the rows as JSON (where asked) after each part."""
    tables, found = [], {"device": machine, "size": args.size}
    parts = [("training", train, lambda rows: training_table(rows, args.precision))]
    parts.append(("serving", serve, lambda rows: serving_table(rows, plan.seconds)))
    for name, run, table in parts:
        if args.part not in ("all", "serve" if name == "serving" else "train"):
            continue
        found[name] = run(args, plan)
        tables.append(table(found[name]))
        console.print(tables[-1])
        if args.json:
            args.json.write_text(json.dumps(found, indent=1))
        if name == "training" and args.device == "cuda":  # torch's cached GPU memory back
            import torch

            torch.cuda.empty_cache()
    if len(tables) > 1:  # together at the end, where a log's tail shows them
        for table in tables:
            console.print(table)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    plan = PLANS[args.size]
    plan = Plan(
        args.seconds or plan.seconds,
        tuple(int(c) for c in args.concurrency.split(",")) if args.concurrency else plan.concurrency,
        args.rounds or plan.rounds,
        plan.synth, plan.overrides, plan.steps, plan.warmup, plan.workers,
    )  # fmt: skip
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("error: --device cuda, but torch sees no GPU; use --device cpu")
    args.cache.mkdir(parents=True, exist_ok=True)
    machine = describe_machine(args.device)
    console.print(f"device: {machine}")
    started = time.perf_counter()
    if args.prepare:
        prepare(args, plan)
    else:
        measure(args, plan, machine)
    console.print(f"size {args.size}, {time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
