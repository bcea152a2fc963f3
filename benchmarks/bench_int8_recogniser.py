"""Static int8 recogniser vs float on a *trained* model: same glosses, WER, CPU time.

    slt data synth data/synth      # the corpus the sample model was trained on (≈ 2 min)
    python benchmarks/bench_int8_recogniser.py [--data data/synth] [--bundle DIR] [--threads 1]

`bench_runtime.py --size real` measures int8 at a real model's size, but on random weights,
whose gloss posteriors are nearly flat, so its agreement says little about a trained
network. Here the model is trained: the shipped sample bundle (`slt_serve/sample_model`,
SingleStream S3D trained by `configs/synth/pipeline.yaml`; its s2g.onnx is float) or any
SingleStream bundle given with `--bundle` and its corpus with `--data`. Its s2g.onnx is
quantised as `slt export model --quantize int8` does (`slt_export.s2g_quantize`:
calibrated on the first `--calibration` dev clips), then every dev and test clip runs
whole through both graphs in the runtime (`S2GRunner`, CTC beam as the manifest says).
Rows per split: clips with the same glosses as float, WER of each against the reference
glosses, and the CPU time of the int8 recogniser over the float one. Dev is split into
the calibration clips and the rest, so the agreement is also shown on clips the
calibration never saw.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from slt_export.s2g_quantize import clip_frames, quantize_s2g
from slt_serve.bundle import load_bundle
from slt_serve.decoding import ctc_decode
from slt_serve.errors import SltError
from slt_serve.onnx_session import CPU, open_session
from slt_serve.s2g import S2GRunner
from slt_serve.sample_model import bundle_path
from slt_serve.vocab import GlossVocab
from slt_training.data.annotations import load_split
from slt_training.metrics import word_error_rate


def glosses_and_time(runner: S2GRunner, frames, vocab, beam: int) -> tuple[str, float]:
    started = time.process_time()
    log_probs = runner.run((f, None) for f in frames)[0]
    seconds = time.process_time() - started
    return " ".join(vocab.decode(ctc_decode(log_probs, beam))), seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("data/synth"), help="the corpus root")
    p.add_argument("--bundle", type=Path, help="a SingleStream bundle (default: the sample's)")
    p.add_argument("--calibration", type=int, default=8, help="dev clips calibrated on")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    p.add_argument("--limit", type=int, help="at most this many clips a split")
    args = p.parse_args()
    if not (args.data / "dev.jsonl").is_file():
        raise SystemExit(f"{args.data}/dev.jsonl not found: run `slt data synth {args.data}` first")
    bundle = load_bundle(args.bundle or bundle_path())
    spec, beam = bundle.manifest.input, bundle.manifest.recognition.ctc_beam_size
    vocab = GlossVocab.load(bundle.path / "gloss_vocab.json")
    splits = {s: load_split(args.data, s)[: args.limit] for s in ("dev", "test")}
    videos = {s: [args.data / c.video for c in clips] for s, clips in splits.items()}
    with tempfile.TemporaryDirectory(prefix="int8-recogniser-") as tmp:
        int8 = Path(tmp) / "s2g.onnx"
        shutil.copy(bundle.path / "s2g.onnx", int8)
        started = time.perf_counter()
        quantize_s2g(int8, spec, videos["dev"][: args.calibration])
        quantise_s = time.perf_counter() - started
        runners = {
            name: S2GRunner(open_session(path, [CPU], args.threads, arena=False), spec)
            for name, path in (("float", bundle.path / "s2g.onnx"), ("int8", int8))
        }
        rows = []
        for split, clips in splits.items():
            out = {"float": [], "int8": []}
            cpu = {"float": 0.0, "int8": 0.0}
            for video in videos[split]:
                frames = clip_frames(video, spec)
                for name, runner in runners.items():
                    text, seconds = glosses_and_time(runner, frames, vocab, beam)
                    out[name].append(text)
                    cpu[name] += seconds
            refs = [c.gloss for c in clips]
            parts = [(split, slice(None))]
            if split == "dev":
                parts += [
                    ("dev: calibration clips", slice(0, args.calibration)),
                    ("dev: the other clips", slice(args.calibration, None)),
                ]
            for label, part in parts:
                f, q, r = out["float"][part], out["int8"][part], refs[part]
                same = sum(a == b for a, b in zip(f, q))
                rows.append((label, len(r), same, word_error_rate(f, r), word_error_rate(q, r)))
            rows.append((f"{split}: int8 / float recogniser CPU time", cpu["int8"] / cpu["float"]))
    name = bundle.manifest.name
    print(
        f"bench_int8_recogniser: {name} ({spec.input_size}², {args.threads} thread(s)); "
        f"int8 calibrated on {args.calibration} dev clips in {quantise_s:.0f} s; CTC beam {beam}"
    )
    print(f"\n{'clips':<34}{'n':>5}{'same glosses':>14}{'WER float':>11}{'WER int8':>10}")
    for row in rows:
        if len(row) == 2:
            print(f"{row[0]:<58}{row[1]:>6.2f}")
        else:
            label, n, same, wf, wq = row
            print(f"{label:<34}{n:>5}{f'{same}/{n} ({same / n:.0%})':>14}{wf:>11.2f}{wq:>10.2f}")


if __name__ == "__main__":
    try:
        main()
    except SltError as e:
        raise SystemExit(str(e)) from None
