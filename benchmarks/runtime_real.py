"""`bench_runtime.py --size real`: the runtime at a real model's size (issue 18).

Model, randomly initialised through the project's own code (`SingleStreamRecognizer`,
`build_mbart`, `export_bundle`): S3D at full width on 224² RGB frames at 25 fps, a
visual head 512/2048 over ~1 100 glosses; an S2T mBART of mbart-large-cc25's shape
(12 + 12 layers, d_model 1024, 16 heads, ffn 4096, 1 024 positions) with a
2 500-piece tokenizer; beam 5, max length 60. It is exported three times into `--cache
DIR`: float (`DIR/fp32`), `quantize="int8"` (`DIR/int8`: static int8 S3D calibrated on
`DIR/calibration/`'s 8 generated clips, int8 encoder/decoder) and `quantize="int8-text"`
(`DIR/int8-text`: s2g.onnx float); a second run finds them there and skips the export
(several minutes each on 2 cores).

Each row translates the same clip in a fresh torch-free process: `--seconds` of 224²
H.264, a bright square moving on noise (~4.7 Mbit/s: a worst case for the video
decoder, ~0.45 s of a 10 s clip), or with `--video FILE` a real clip's frames
repeated to `--seconds` at its own size and rate and re-encoded (the runtime decodes
and resizes it as it would a user's upload): the bundle loaded (RSS), `--warm`
`Translator.translate` calls after a first one (stage times and real-time factor of the
median one, as a serving process's later requests run; `RTF range`: the lowest and
highest of them, which move ±10 % on a quiet CPU; `1st RTF`: the first request's), peak
RSS = VmHWM over all of them, and the median's
glosses and text, compared with the int8 row at the runtime's defaults. Rows: the three
bundles at the defaults (window DEFAULT_WINDOW + DEFAULT_CONTEXT, s2g without a
memory arena) and smaller windows for a ~1.5 GB budget; then (`--whole-seconds`) the
smallest window against one s2g run over a shorter clip. Where the peak is: the RSS
before and the peak during the recogniser's and the decoder's runs (VmHWM reset through
/proc/self/clear_refs before each). `cpu s` is the row process's
user + system time a timed request: on a CPU shared with other work, wall time (and RTF) grows with the
load and CPU time much less, so compare rows by both. int8 vs float recogniser: the
glosses of `--agreement-clips` more generated clips (4 s each, not the calibration
ones) through the int8 and the fp32 bundle's s2g.onnx (`s2g_quantize.same_glosses`).

The random S3D's BatchNorm statistics are set from one pass over random frames
(`calibrate_batchnorm`): left at their initial values, its outputs hardly depend on
the frames and every comparison would be trivially "same".

The floor: FLOPs of the recogniser (torch's FlopCounterMode on the same model and
clip length) and of the beam search (2 × the decoder's weights per token and beam,
max length steps, the cross-attention K/V once), over an fp32 matmul rate measured
here with `--threads` threads (torch, 1024² × 1024²).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIZE = 224
GLOSSES = 1100
TOKENS = 2500
MBART = dict(encoder_layers=12, decoder_layers=12, d_model=1024, heads=16, ffn=4096)
SPEC = {
    "frame_size": SIZE,
    "input_size": SIZE,
    "mean": [0.45, 0.45, 0.45],
    "std": [0.225, 0.225, 0.225],
    "motion_channels": False,
    "keypoints": None,
    "eval_crop": 1.0,
}

# rows: (label, bundle, window_frames, context_frames, s2g arena); arena None: the runtime's
SMALL_WINDOWS = (128, 96, 64)  # windows (frames) for a ~1.5 GB peak at 224²; the last also runs
# against the whole clip (`--whole-seconds`)
CALIBRATION = 8  # generated clips the int8 bundle's recogniser is calibrated on
BUNDLES = {"fp32": None, "int8": "int8", "int8-text": "int8-text"}  # folder: quantize

ROW = """
import json, re, sys

def mb(key):  # VmHWM: this process's peak (ru_maxrss would carry the parent's over exec)
    return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

def cpu():
    import resource
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime

peaks = {"all": 0.0}  # stage: [peak during its runs, largest RSS before one]

class Stage:  # a session whose runs' peaks are kept: VmHWM is reset before each run
    def __init__(self, name, session):
        self.name, self.session = name, session
        peaks[name] = [0.0, 0.0]
    def __getattr__(self, key):
        return getattr(self.session, key)
    def run(self, *args, **kwargs):
        before = mb("VmRSS")
        peaks["all"] = max(peaks["all"], mb("VmHWM"))
        open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS
        out = self.session.run(*args, **kwargs)
        p = peaks[self.name]
        p[0], p[1] = max(p[0], mb("VmHWM")), max(p[1], before)
        return out

from slt_serve.onnx_session import open_session
from slt_serve.s2g import S2GRunner
from slt_serve.translator import TranslateOptions, Translator

bundle, video, threads, window, context, arena, warm = json.loads(sys.argv[1])
t = Translator.from_bundle(bundle, TranslateOptions(device="cpu", threads=threads))
spec = t.spec.model_copy(update={"window_frames": window, "context_frames": context})
session = t.s2g.session
if arena is not None:  # another arena setting than the runtime's
    session = open_session(bundle + "/s2g.onnx", ["CPUExecutionProvider"], threads, arena)
stem = Stage("s2g", t.s2g.stem) if t.s2g.stem is not None else None  # int8: the stem apart
t.s2g = S2GRunner(Stage("s2g", session), spec, stem)
t.seq2seq.decoder = Stage("decoder", t.seq2seq.decoder)
loaded = mb("VmRSS")
first = t.translate(video).timings_ms  # the process's first request: onnxruntime's first runs
started = cpu()
later = [t.translate(video) for _ in range(warm)]  # what a serving process's later requests take
r = sorted(later, key=lambda x: x.timings_ms["total"])[len(later) // 2]  # the median one
print(json.dumps({"loaded_mb": loaded, "peak_mb": max(peaks.pop("all"), mb("VmHWM")),
                  "first": first, "totals": [x.timings_ms["total"] for x in later],
                  "torch": "torch" in sys.modules, "cpu_s": (cpu() - started) / warm, "stages": peaks,
                  "gloss": r.gloss, "text": r.text, "timings": r.timings_ms, "duration": r.duration_s,
                  "window": t.s2g.spec.window_frames, "context": t.s2g.spec.context_frames}))
"""

# the int8 bundle's second request with onnxruntime's profiler on the recogniser and the
# decoder: kernel time by op type (what a request spends its graph time on)
PROFILE = """
import collections, json, sys, tempfile
import onnxruntime as ort
from slt_serve.onnx_session import CPU
from slt_serve.s2g import S2GRunner
from slt_serve.translator import TranslateOptions, Translator

bundle, video, threads = json.loads(sys.argv[1])
t = Translator.from_bundle(bundle, TranslateOptions(device="cpu", threads=threads))
t.translate(video)  # the first request, not profiled
folder = tempfile.mkdtemp(prefix="bench-profile-")
def profiled(name, arena):
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.enable_cpu_mem_arena, o.log_severity_level = threads, arena, 3
    o.enable_profiling, o.profile_file_prefix = True, folder + "/" + name
    return ort.InferenceSession(bundle + "/" + name + ".onnx", o, providers=[CPU])
stem = profiled("s2g_stem", False) if t.s2g.stem is not None else None
t.s2g = S2GRunner(profiled("s2g", False), t.spec, stem)  # arenas as the runtime opens them
t.seq2seq.decoder = profiled("decoder", True)
t.translate(video)  # warm-up of the profiled sessions
t.translate(video)
out = {}
for name, sessions in (("s2g", [t.s2g.session, stem]), ("decoder", [t.seq2seq.decoder])):
    ops = collections.Counter()
    for session in filter(None, sessions):
        for e in json.load(open(session.end_profiling())):
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                ops[e["args"]["op_name"]] += e["dur"] / 1e3 / 2  # ms a request (2 profiled)
    out[name] = ops.most_common()
print(json.dumps(out))
"""


def words(rng, count: int, syllables: tuple[str, ...]) -> list[str]:
    """`count` distinct made-up words of 1-3 syllables."""
    out: dict[str, None] = {}
    while len(out) < count:
        out["".join(rng.choice(syllables, rng.integers(1, 4)))] = None
    return list(out)


def calibrate_batchnorm(model, *inputs) -> None:
    """BatchNorm running statistics from one train-mode pass of `model` over `inputs`, then
    eval mode. A random S3D's activations otherwise fade through its 40-odd layers until its
    outputs hardly depend on the frames (any windowing or quantisation would then look
    exact); with its statistics set, like a trained model's, they keep their scale."""
    import torch
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm3d):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average: this one pass
    with torch.no_grad():
        model.train()(*inputs)
    model.eval()


def build(cache: Path, fps: float) -> dict[str, Path]:
    """The fp32, int8 and int8-text bundles in `cache`, exported unless a previous run left
    them."""
    bundles = {q: cache / q for q in BUNDLES}
    calibration = [cache / "calibration" / f"clip{i}.mp4" for i in range(CALIBRATION)]
    for i, path in enumerate(calibration):
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            clip(path, 4.0, fps, seed=100 + i)
    missing = [q for q, p in bundles.items() if not (p / "manifest.json").exists()]
    if not missing:
        print(f"reusing the bundles in {cache}", flush=True)
        return bundles
    import torch

    from slt_export.bundle import ExportOptions, RecognitionPart, TranslationPart, export_bundle
    from slt_serve.vocab import GlossVocab
    from slt_training.models.recognition import SingleStreamOptions, SingleStreamRecognizer
    from slt_training.models.translation import (
        GenerateOptions,
        TranslationModel,
        TranslationOptions,
    )
    from slt_training.models.visual_head import VisualHeadOptions
    from slt_training.text.mbart import MBartOptions, build_mbart
    from slt_training.text.tokenizer import TokenizerOptions, train_tokenizer

    rng = np.random.default_rng(0)
    syllables = tuple(a + b for a in "bdfgklmnprstvz" for b in "aeiou")
    vocab_words = words(rng, 6000, syllables)
    texts = [" ".join(rng.choice(vocab_words, rng.integers(5, 16))) + " ." for _ in range(20000)]
    tok = train_tokenizer(texts, [], TokenizerOptions(vocab_size=TOKENS, lang="en_XX"))
    vocab = GlossVocab.from_glosses(w.upper() for w in vocab_words[:GLOSSES])
    torch.manual_seed(0)
    head = VisualHeadOptions(hidden_size=512, ff_size=2048)
    recognizer = SingleStreamRecognizer(SingleStreamOptions(head=head), len(vocab))
    calibrate_batchnorm(recognizer, torch.randn(1, 3, 32, SIZE, SIZE), torch.tensor([32]))
    options = MBartOptions(**MBART, max_positions=1024).verify()
    model = TranslationModel(
        build_mbart(options, tok), TranslationOptions(input="features", feature_dim=512)
    ).eval()
    generation = GenerateOptions(num_beams=5, length_penalty=1.0, max_length=60)
    for q in missing:
        started = time.perf_counter()
        print(f"exporting the {q} bundle to {bundles[q]} …", flush=True)
        export_bundle(
            bundles[q],
            RecognitionPart(recognizer, SPEC, vocab, fps=fps, ctc_beam_size=5),
            TranslationPart(model, tok, generation),
            ExportOptions(
                name=f"bench-real-{q}",
                quantize=BUNDLES[q],
                calibration=tuple(calibration),
                overwrite=True,
            ),
        )
        print(f"  {time.perf_counter() - started:.0f} s", flush=True)
    return bundles


def clip(path: Path, seconds: float, fps: float, seed: int = 1) -> None:
    """A bright square moving on noise (seed 1: the timed clip; others move it elsewhere)."""
    from slt_serve.video import write_video

    frames = int(round(seconds * fps))
    rng = np.random.default_rng(seed)
    y, speed = (80, 3) if seed == 1 else (int(rng.integers(0, SIZE - 64)), int(rng.integers(1, 7)))
    video = np.empty((frames, SIZE, SIZE, 3), dtype=np.uint8)
    for t in range(frames):
        video[t] = rng.integers(0, 80, (SIZE, SIZE, 3), dtype=np.uint8)
        x = (speed * t + seed) % (SIZE - 64)
        video[t, y : y + 64, x : x + 64] = 230
    write_video(path, video, fps)


def repeated(source: Path, path: Path, seconds: float) -> None:
    """`source`'s frames, repeated until `seconds` long, as H.264 at its own size and rate."""
    from slt_serve.video import probe, read_frames, write_video

    fps = probe(source).fps
    frames = read_frames(source)
    frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]  # even sides
    count = int(round(seconds * fps))
    write_video(path, (frames[i % len(frames)] for i in range(count)), fps)


def run_row(bundle: Path, video: Path, threads: int, window, context, arena, warm=1) -> dict:
    argument = json.dumps([str(bundle), str(video), threads, window, context, arena, warm])
    done = subprocess.run(
        [sys.executable, "-c", ROW, argument], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"a row failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def floor(frames: int, threads: int) -> dict[str, float]:
    """FLOPs of the recogniser (counted) and the beam search (from the weights), and the
    seconds they need at a measured fp32 matmul rate."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from slt_training.models.recognition import SingleStreamOptions, SingleStreamRecognizer
    from slt_training.models.visual_head import VisualHeadOptions

    torch.set_num_threads(threads)
    head = VisualHeadOptions(hidden_size=512, ff_size=2048)
    model = SingleStreamRecognizer(SingleStreamOptions(head=head), GLOSSES + 4).eval()
    probe = 16  # frames counted; S3D's cost is linear in time
    x = torch.zeros(1, 3, probe, SIZE, SIZE)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, torch.tensor([probe]))
    s2g = counter.get_total_flops() / probe * frames
    d, layers, ffn = MBART["d_model"], MBART["decoder_layers"], MBART["ffn"]
    per_token = 2 * (layers * (2 * d * d + 2 * d * ffn) + d * TOKENS)  # self-attn q,k,v,o ≈ 4d²
    per_token += 2 * layers * 2 * d * d  # cross-attention q and o (K/V computed once)
    decoder = per_token * 5 * 60
    a = torch.randn(1024, 1024)
    torch.mm(a, a)
    runs, started = 20, time.perf_counter()
    for _ in range(runs):
        torch.mm(a, a)
    rate = 2 * 1024**3 * runs / (time.perf_counter() - started)
    return {"s2g_flop": s2g, "decoder_flop": decoder, "rate": rate}


def rows(defaults: tuple[int, int]) -> list[tuple[str, str, int, int, bool | None]]:
    """(label, bundle, window, context, arena): the runtime's defaults for the three bundles
    and the smaller windows a memory budget needs (int8, and int8-text's float s2g)."""
    window, context = defaults
    return [
        (f"fp32, default: window {window} + {context}", "fp32", window, context, None),
        (f"int8, default: window {window} + {context}", "int8", window, context, None),
        (f"int8-text, default: window {window} + {context}", "int8-text", window, context, None),
        *((f"int8, window {w} + {context}", "int8", w, context, None) for w in SMALL_WINDOWS),
        *(
            (f"int8-text, window {w} + {context}", "int8-text", w, context, None)
            for w in SMALL_WINDOWS[-1:]
        ),
    ]


def agreement(bundles: dict[str, Path], cache: Path, count: int, fps: float) -> tuple[int, int]:
    """Clips (generated, 4 s, not the calibration ones) whose glosses the int8 bundle's
    recogniser gives as the fp32 one's."""
    from slt_export.s2g_quantize import same_glosses
    from slt_serve.bundle import load_bundle

    clips = [cache / "agreement" / f"clip{i}.mp4" for i in range(count)]
    for i, path in enumerate(clips):
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            clip(path, 4.0, fps, seed=200 + i)
    m = load_bundle(bundles["int8"]).manifest
    beam = m.recognition.ctc_beam_size
    float_s2g, int8_s2g = bundles["fp32"] / "s2g.onnx", bundles["int8"] / "s2g.onnx"
    return same_glosses(float_s2g, int8_s2g, m.input, clips, beam, limit=count)


def op_profile(bundle: Path, video: Path, threads: int, top: int = 8) -> None:
    """Print the int8 bundle's kernel time by op type, recogniser and decoder side by side."""
    argument = json.dumps([str(bundle), str(video), threads])
    done = subprocess.run(
        [sys.executable, "-c", PROFILE, argument], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"the profile failed:\n{done.stderr[-3000:]}")
    ops = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nkernel time by op type, int8 bundle, a request after the first ({threads} threads):")
    print(f"{'s2g op':<24}{'ms':>8}{'share':>7}    {'decoder op':<24}{'ms':>8}{'share':>7}")
    totals = {k: sum(ms for _, ms in v) for k, v in ops.items()}
    for i in range(top):
        cells = []
        for name in ("s2g", "decoder"):
            op, ms = ops[name][i] if i < len(ops[name]) else ("", 0.0)
            cells.append(f"{op:<24}{ms:>8.0f}{ms / totals[name]:>7.1%}" if op else " " * 39)
        print("    ".join(cells))
    print(
        f"{'all ops':<24}{totals['s2g']:>8.0f}{'':>7}    {'all ops':<24}{totals['decoder']:>8.0f}"
    )


def same(a: dict, b: dict) -> str:
    return "/".join("same" if a[k] == b[k] else "DIFFERENT" for k in ("gloss", "text"))


def rtf_range(row: dict) -> str:
    rtf = [total / 1e3 / row["duration"] for total in row["totals"]]
    return f"{min(rtf):.3f}–{max(rtf):.3f}"


def report(
    args, frames: int, results: list, whole: dict | None, cost, agreeing, quantization, load
) -> None:
    source = f"{Path(args.video).name} repeated" if args.video else f"{SIZE}² square on noise"
    print(
        f"bench_runtime --size real: {args.seconds:g} s clip ({source}) at {args.fps:g} fps "
        f"({frames} frames at {SIZE}²); S3D width 1 + head 512 ({GLOSSES} glosses), mBART 12+12 d 1024 "
        f"({TOKENS} pieces), beams 5, max length 60; {args.threads} threads; one fresh "
        f"torch-free process a row, timed on {args.warm} requests after its first (the median)"
    )
    print()
    head = (
        f"{'row':<40}{'loaded MB':>10}{'peak MB':>9}{'s2g s':>8}{'enc s':>7}{'dec s':>7}"
        f"{'total s':>9}{'RTF':>7}{'RTF range':>12}{'1st RTF':>8}{'cpu s':>7}{'s2g pk':>8}"
        f"{'pre':>6}{'dec pk':>8}"
        "  glosses/text vs row 2"
    )
    print(head)
    ref = results[1][1]
    for (label, *_), r in results:
        t = r["timings"]
        print(
            f"{label:<40}{r['loaded_mb']:>10.0f}{r['peak_mb']:>9.0f}{t['s2g'] / 1e3:>8.2f}"
            f"{t['encoder'] / 1e3:>7.2f}{t['decoder'] / 1e3:>7.2f}{t['total'] / 1e3:>9.2f}"
            f"{t['total'] / 1e3 / r['duration']:>7.3f}{rtf_range(r):>12}"
            f"{r['first']['total'] / 1e3 / r['duration']:>8.3f}{r['cpu_s']:>7.1f}"
            f"{r['stages']['s2g'][0]:>8.0f}{r['stages']['s2g'][1]:>6.0f}"
            f"{r['stages']['decoder'][0]:>8.0f}  {same(r, ref)}"
        )
    print()
    print(f"int8 vs fp32 (default rows): glosses/text {same(results[0][1], ref)}")
    same_clips, clips = agreeing
    print(
        f"int8 vs fp32 recogniser on {clips} more 4 s clips: {same_clips}/{clips} the same "
        f"glosses; on its calibration clips (manifest): {quantization.float_same_glosses}"
    )
    print(f"load average before / after the rows: {load[0]:.1f} / {load[1]:.1f} (2 cores)")
    print(
        "s2g pk / dec pk: the peak RSS during the recogniser's / decoder's runs (VmHWM reset "
        "before each); pre: the largest RSS before a recogniser run (bundle + the window's "
        "frames and float input)"
    )
    if whole is not None:
        w = whole["windowed"]
        print(
            f"windows vs whole clip, int8, first {whole['seconds']:g} s: glosses/text "
            f"{same(w, whole['whole'])} (whole: one s2g run, peak {whole['whole']['peak_mb']:.0f} MB; "
            f"windows {w['window']} + {w['context']}: peak {w['peak_mb']:.0f} MB)"
        )
    s2g_s, dec_s = cost["s2g_flop"] / cost["rate"], cost["decoder_flop"] / cost["rate"]
    default = results[0][1]["timings"]
    duration = results[0][1]["duration"]
    print(
        f"floor at a measured fp32 matmul rate of {cost['rate'] / 1e9:.0f} GFLOP/s "
        f"({args.threads} threads): recogniser {cost['s2g_flop'] / 1e9:.0f} GFLOP → {s2g_s:.2f} s "
        f"(fp32 default row: {s2g_s / (default['s2g'] / 1e3):.2f} of it reached); beam search "
        f"{cost['decoder_flop'] / 1e9:.0f} GFLOP → {dec_s:.2f} s (compute; a step is "
        f"memory-bound); RTF floor {(s2g_s + dec_s) / duration:.3f}"
    )


def main(args) -> None:
    """`bench_runtime.py --size real`."""
    import tempfile

    from slt_export.bundle import DEFAULT_CONTEXT, DEFAULT_WINDOW

    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="bench-real-"))
    cache.mkdir(parents=True, exist_ok=True)
    bundles = build(cache, args.fps)
    if args.video:
        video = cache / f"clip-{Path(args.video).stem}-{args.seconds:g}s.mp4"
        if not video.exists():
            repeated(Path(args.video), video, args.seconds)
    else:
        video = cache / f"clip-{args.seconds:g}s.mp4"
        if not video.exists():
            clip(video, args.seconds, args.fps)
    results = []
    load = [os.getloadavg()[0]]
    for row in rows((DEFAULT_WINDOW, DEFAULT_CONTEXT)):
        print(f"row: {row[0]} …", flush=True)
        results.append((row, run_row(bundles[row[1]], video, args.threads, *row[2:], args.warm)))
    whole = None
    if args.whole_seconds:  # the same windows against one run over a shorter clip
        short = cache / f"clip-{args.whole_seconds:g}s.mp4"
        if not short.exists():
            clip(short, args.whole_seconds, args.fps)
        frames = int(round(args.whole_seconds * args.fps))
        run = lambda w: run_row(bundles["int8"], short, args.threads, w, DEFAULT_CONTEXT, None)  # noqa: E731
        print("rows: windows vs whole clip …", flush=True)
        whole = {"seconds": args.whole_seconds, "windowed": run(SMALL_WINDOWS[-1])}
        whole["whole"] = run(frames + (-frames) % 4)
    load.append(os.getloadavg()[0])
    print("agreement clips …", flush=True)
    agreeing = agreement(bundles, cache, args.agreement_clips, args.fps)
    from slt_serve.bundle import load_bundle

    quantization = load_bundle(bundles["int8"]).manifest.quantization
    frames = int(round(args.seconds * args.fps))
    cost = floor(frames, args.threads)
    report(args, frames, results, whole, cost, agreeing, quantization, load)
    if args.profile:
        op_profile(bundles["int8"], video, args.threads)
