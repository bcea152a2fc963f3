"""The torch-free runtime (onnxruntime + numpy) against PyTorch eager, on the same model and clip.

    python benchmarks/bench_runtime.py [--seconds 10] [--fps 25] [--threads 2] [--repeats 3]
    python benchmarks/bench_runtime.py --size real --cache DIR [--seconds 60] [--whole-seconds 10]
        [--agreement-clips 20]

`--size real` (a real model's size, exported once into DIR and reused; rows in fresh
torch-free processes, peak RSS and the FLOP floor): see `runtime_real.py`.

Model: a SingleStream recognizer at the synthetic config's size
(configs/synth/s2g_single.yaml: 64² input, motion channels, head 256/512) and an
S2T mBART of the synthetic G2T config's size ("small": 3+3 layers, d_model 256)
with a 1 000-piece tokenizer and its generation settings (5 beams, max length
60), randomly initialised: speed does not depend on the weights, but a random
model seldom says EOS, so the beam search usually runs to max length (the worst
case; a trained model stops at the sentence's end). The bundle is exported first
(its parity check included).

Clip: `--seconds` of `--fps` video, 64², a bright square moving on noise, H.264.

Rows: the recognizer on the clip's frames, the translation (encoder + beam search
over the decoder with its key/value cache), and both together from decoded frames,
each PyTorch eager (no grad, eval) vs `Translator` (best of `--repeats`, after a
warm-up; both with `--threads` threads), with whether glosses and tokens are the
same; then `Translator.translate(video)` end to end with its time split by stage
and the real-time factor (seconds of compute per second of video); then the peak
RSS of a fresh torch-free process that loads the bundle and translates the clip.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORDS = (
    "the a man woman child dog cat sees buys likes takes gives an apple bread water book house "
    "car today tomorrow morning evening rain sun wind is was will be very small big red blue "
    "green my your our their friend doctor teacher school work home goes comes eats drinks"
).split()


def build(folder: Path, args) -> tuple:
    """Random recognizer + S2T model of the synthetic configs' size, exported to a bundle."""
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
    from slt_training.text.mbart import build_mbart, preset
    from slt_training.text.tokenizer import TokenizerOptions, train_tokenizer

    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, rng.integers(4, 12))) + " ." for _ in range(2000)]
    glosses = [[w.upper() for w in t.split()[:-1]] for t in texts]
    tok = train_tokenizer(texts, glosses, TokenizerOptions(vocab_size=1000, lang="en_XX"))
    vocab = GlossVocab.from_glosses(w.upper() for w in WORDS)
    torch.manual_seed(0)
    head = VisualHeadOptions(hidden_size=256, ff_size=512, dropout=0.1)
    recognizer = SingleStreamRecognizer(
        SingleStreamOptions(head=head, frozen_blocks=0, in_channels=6), len(vocab)
    ).eval()
    mbart = build_mbart(preset("small"), tok)
    model = TranslationModel(mbart, TranslationOptions(input="features", feature_dim=256)).eval()
    generation = GenerateOptions(num_beams=5, length_penalty=1.0, max_length=60)
    spec = {
        "frame_size": 64,
        "input_size": 64,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "motion_channels": True,
        "keypoints": None,
        "eval_crop": 1.0,
    }
    started = time.perf_counter()
    result = export_bundle(
        folder / "bundle",
        RecognitionPart(recognizer, spec, vocab, fps=args.fps, ctc_beam_size=5),
        TranslationPart(model, tok, generation),
        ExportOptions(name="bench-single-s2t"),
    )
    return result, recognizer, model, tok, vocab, generation, time.perf_counter() - started


def clip(path: Path, seconds: float, fps: float) -> None:
    from slt_serve.video import write_video

    frames = int(round(seconds * fps))
    rng = np.random.default_rng(1)
    video = rng.integers(0, 80, (frames, 64, 64, 3), dtype=np.uint8)
    for t in range(frames):
        x = (2 * t) % 48
        video[t, 20:36, x : x + 16] = 230
    write_video(path, video, fps)


def best(fn, repeats: int):
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def torch_pipeline(recognizer, model, tok, vocab, generation, frames):
    """PyTorch eager: training's eval preprocessing → recognizer → CTC beam 5 → generate."""
    import torch

    from slt_serve.decoding import ctc_prefix_beam_search
    from slt_training.data.s2g_data import ClipOptions, crop_resize, to_input

    options = ClipOptions(frame_size=64, input_size=64, motion_channels=True)
    x = to_input(crop_resize(frames, (0.0, 0.0, 64.0, 64.0), 64), options)[None]
    with torch.no_grad():
        out = recognizer(x, torch.tensor([x.shape[2]]))
        hyp = ctc_prefix_beam_search(out.gloss_log_probs[0].numpy(), 5)[0]
        mask = torch.ones(out.gloss_features.shape[:2], dtype=torch.long)
        ids = model.generate(mask, generation, features=out.gloss_features)[0].tolist()
    return " ".join(vocab.decode(hyp.tokens)), tok.decode(ids), out.gloss_features, ids


RSS_RUNTIME = """
import json, re, sys

def mb(key):  # VmHWM: this process's peak (ru_maxrss would carry the parent's over exec)
    return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

from slt_serve.translator import TranslateOptions, Translator
t = Translator.from_bundle(sys.argv[1], TranslateOptions(threads=int(sys.argv[3])))
loaded = mb("VmRSS")
r = t.translate(sys.argv[2])
print(json.dumps({"loaded_mb": loaded, "peak_mb": mb("VmHWM"), "torch": "torch" in sys.modules}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the clip")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate of the clip")
    parser.add_argument("--threads", type=int, default=2, help="for PyTorch and onnxruntime alike")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs a row, best one shown")
    parser.add_argument(
        "--size", choices=("toy", "real"), default="toy", help="real: see runtime_real.py"
    )
    parser.add_argument("--cache", help="--size real: folder the bundles are exported to / reused")
    parser.add_argument(
        "--whole-seconds", type=float, default=10.0,
        help="--size real: a clip this long run whole and in windows (0: skip)",
    )  # fmt: skip
    parser.add_argument(
        "--agreement-clips", type=int, default=20,
        help="--size real: 4 s clips whose glosses the int8 and fp32 recognisers must share",
    )  # fmt: skip
    parser.add_argument(
        "--warm", type=int, default=3,
        help="--size real: requests timed after each row's first (the median is shown)",
    )  # fmt: skip
    parser.add_argument(
        "--video",
        help="--size real: time this real clip, its frames repeated to --seconds at its own "
        "size and frame rate, instead of the generated one (a square moving on noise)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="--size real: also the int8 bundle's kernel time by op type (onnxruntime profiler)",
    )
    args = parser.parse_args()
    if args.size == "real":
        import runtime_real

        return runtime_real.main(args)
    import torch

    from slt_serve.translator import TranslateOptions, Translator
    from slt_serve.video import read_frames

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        exported, recognizer, model, tok, vocab, generation, export_s = build(folder, args)
        video = folder / "clip.mp4"
        clip(video, args.seconds, args.fps)
        bundle = exported.path
        translator = Translator.from_bundle(
            bundle, TranslateOptions(device="cpu", threads=args.threads)
        )
        frames = read_frames(video, size=64, fps=args.fps)  # what translate() decodes

        # recognizer alone
        import torch as th

        from slt_serve.clip_input import normalise

        x_np = normalise(frames, translator.spec)
        x_th = th.from_numpy(x_np).permute(1, 0, 2, 3)[None]
        with th.no_grad():
            t_s2g, t_out = best(lambda: recognizer(x_th, th.tensor([x_th.shape[2]])), args.repeats)
        o_s2g, o_out = best(lambda: translator.s2g.run_clip(x_np), args.repeats)
        s2g_same = np.array_equal(t_out.gloss_log_probs[0].numpy().argmax(-1), o_out[0].argmax(-1))

        # translation alone, on the same (PyTorch) features
        feats = t_out.gloss_features
        mask = th.ones(feats.shape[:2], dtype=th.long)
        with th.no_grad():
            t_tr, t_ids = best(
                lambda: model.generate(mask, generation, features=feats)[0].tolist(), args.repeats
            )
        f_np, m_np = feats.numpy(), mask.numpy()
        o_tr, o_ids = best(
            lambda: translator.seq2seq.generate(f_np, m_np, translator.generation)[0], args.repeats
        )

        # both, from decoded frames
        t_all, t_res = best(
            lambda: torch_pipeline(recognizer, model, tok, vocab, generation, frames), args.repeats
        )
        o_all, o_res = best(lambda: translator.translate_frames(frames, args.fps), args.repeats)
        same_all = (t_res[0], t_res[1]) == (o_res.gloss, o_res.text)

        # end to end from the video file
        runs = [translator.translate(video) for _ in range(args.repeats + 1)][1:]
        e2e = min(runs, key=lambda r: r.timings_ms["total"])

        rss = subprocess.run(
            [sys.executable, "-c", RSS_RUNTIME, str(bundle), str(video), str(args.threads)],
            capture_output=True,
            text=True,
            check=True,
        )
        rss = json.loads(rss.stdout)
        size_mb = exported.megabytes

    print(
        f"bench_runtime: {args.seconds:g} s clip at {args.fps:g} fps ({len(frames)} frames, 64²), "
        f"SingleStream (head 256) + mBART small, beams 5, max length 60; {args.threads} threads, "
        f"best of {args.repeats}; bundle {size_mb:.1f} MB, exported + parity in {export_s:.0f} s"
    )
    print()
    print(f"{'stage':<34}{'PyTorch s':>11}{'onnxruntime s':>15}{'speed-up':>10}  same output")
    rows = [
        ("recognizer (s2g) on the frames", t_s2g, o_s2g, "argmax path" if s2g_same else "NO"),
        (
            f"translation ({len(o_ids)} tokens)",
            t_tr,
            o_tr,
            "tokens" if t_ids == o_ids else f"NO ({len(t_ids)} vs {len(o_ids)} tokens)",
        ),
        ("frames → glosses + text", t_all, o_all, "glosses + text" if same_all else "NO"),
    ]
    for name, a, b, same in rows:
        print(f"{name:<34}{a:>11.3f}{b:>15.3f}{a / b:>9.2f}×  {same}")
    print()
    total = e2e.timings_ms["total"] / 1000
    split = ", ".join(f"{k} {v:.0f}" for k, v in e2e.timings_ms.items() if k != "total" and v)
    print(
        f"translate(video) end to end: {total:.3f} s for {e2e.duration_s:.1f} s of video: "
        f"real-time factor {total / e2e.duration_s:.3f}  (ms: {split})"
    )
    print(
        f"peak RSS, fresh process: runtime {rss['peak_mb']:.0f} MB "
        f"({rss['loaded_mb']:.0f} MB with the bundle loaded, before translating; torch imported: {rss['torch']})"
    )


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
