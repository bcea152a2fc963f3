"""The final table: the stages' own scores, and the exported bundle on the dev/test videos.

`results.json` holds the numbers, `results.md` the table as Markdown; `slt pipeline`
prints the same rows (`result_rows`, `bundle_lines`).
"""

from __future__ import annotations

from pathlib import Path

from slt_serve.fileio import atomic_write, write_json
from slt_training.runs import RunFolder

from .plan import Plan

RESULTS_JSON, RESULTS_MD = "results.json", "results.md"
TEXT_METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l")
TABLE_HEADER = ("model", "split", "WER", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L")
MODEL_NAMES = {"s2t": "S2T (PyTorch)", "bundle": "S2T bundle (ONNX)", "g2t": "G2T (gold glosses)"}


def collect_results(plan: Plan) -> dict:
    """split → {wer (S2G), bleu1..4, rouge_l (S2T)}, and G2T's scores for comparison."""
    s2g = RunFolder(Path(plan.s2g.run_dir)).metrics().get("scores", {})
    s2t = RunFolder(Path(plan.s2t.run_dir)).metrics().get("scores", {})
    g2t = {} if plan.g2t is None else RunFolder(Path(plan.g2t.run_dir)).metrics()
    g2t = g2t.get("scores", {})
    out: dict = {"s2t": {}, "g2t": {}}
    for split in sorted(set(s2g) | set(s2t)):
        row = {"wer": s2g.get(split, {}).get("wer")}
        row |= {m: s2t.get(split, {}).get(m) for m in TEXT_METRICS}
        out["s2t"][split] = row
    for split, scores in g2t.items():
        out["g2t"][split] = {m: scores.get(m) for m in TEXT_METRICS}
    return out


def evaluate_bundle(plan: Plan) -> dict:
    """Translate the dev/test videos with the exported bundle (torch-free runtime), score them."""
    from slt_serve.translator import Translator
    from slt_training.data.annotations import load_split, split_path
    from slt_training.metrics import evaluate_gloss, evaluate_text

    translator = Translator.from_bundle(plan.bundle_dir)
    root, lang = Path(plan.s2g.data.root), plan.s2t.data.lang
    limit = plan.config.evaluate.max_clips
    s2t_run = RunFolder(Path(plan.s2t.run_dir))
    out: dict = {}
    for split in (plan.s2g.data.dev_split, plan.s2g.data.test_split):
        if not split or not split_path(root, split).is_file():
            continue
        clips = load_split(root, split)[:limit]
        results = [translator.translate(root / c.video) for c in clips]
        text = evaluate_text([r.text for r in results], [c.text for c in clips], lang)
        gloss = evaluate_gloss([r.gloss for r in results], [c.gloss for c in clips], False)
        seconds = sum(r.timings_ms.get("total", 0.0) for r in results) / 1000
        duration = sum(r.duration_s for r in results)
        out[split] = {"clips": len(clips), "wer": gloss.wer}
        out[split] |= {m: getattr(text, m) for m in TEXT_METRICS}
        out[split]["real_time_factor"] = seconds / duration if duration else None
        pytorch = s2t_run.predictions(split)
        same = [pytorch[c.name] == r.text for c, r in zip(clips, results) if c.name in pytorch]
        # the bundle against the PyTorch model on the same clips: the export's end-to-end check
        out[split]["same_text_as_pytorch"] = sum(same) / len(same) if same else None
    return out


def write_results(run_dir: Path, results: dict) -> Path:
    """`results.json` and `results.md` in the pipeline's run folder; returns the latter."""
    write_json(run_dir / RESULTS_JSON, results)
    with atomic_write(run_dir / RESULTS_MD) as f:
        f.write(results_markdown(results))
    return run_dir / RESULTS_MD


def result_rows(results: dict):
    """(model, split, WER, BLEU-1..4, ROUGE-L as text) rows of the final table."""
    for key, name in MODEL_NAMES.items():
        for split, row in results.get(key, {}).items():
            cells = [row.get("wer"), *(row.get(m) for m in TEXT_METRICS)]
            yield (name, split, *(_cell(v) for v in cells))


def bundle_lines(results: dict) -> list[str]:
    """One line a split: how the bundle compares with PyTorch, and its real-time factor."""
    lines = []
    for split, row in results.get("bundle", {}).items():
        same, rtf = row.get("same_text_as_pytorch"), row.get("real_time_factor")
        lines.append(
            f"bundle on {split}: {row['clips']} clips, same text as PyTorch on "
            f"{'–' if same is None else f'{100 * same:.0f} %'} of them, real-time factor "
            f"{'–' if rtf is None else f'{rtf:.2f}'}"
        )
    return lines


def results_markdown(results: dict) -> str:
    """The final table, as Markdown (results.md; the CLI prints the same rows)."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in result_rows(results)]
    lines += ["\n" + line for line in bundle_lines(results)]
    return "\n".join(lines) + "\n"


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
