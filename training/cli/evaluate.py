"""`slt evaluate`: score hypotheses against references as TwoStream-SLT does."""

from __future__ import annotations

from pathlib import Path

import typer

from slt_serve.errors import SltError

from .common import echo_next


def evaluate(
    hyp: Path = typer.Option(..., "--hyp", help="Hypotheses: plain text (one a line) or JSONL."),
    ref: Path = typer.Option(..., "--ref", help="References: plain text or JSONL (by `name`)."),
    task: str = typer.Option(
        "text", help="What to score: 'text' (BLEU, ROUGE-L) or 'gloss' (WER)."
    ),
    lang: str = typer.Option(
        None,
        help="Language of the text (de, zh, vi, en, ...); zh is scored on characters. "
        "Required for --task text.",
    ),
    phoenix_cleanup: bool = typer.Option(
        None,
        "--phoenix-cleanup/--no-phoenix-cleanup",
        help="Apply the PHOENIX-2014T gloss clean-up to both sides before WER "
        "(default: on for --task gloss --lang de, off otherwise).",
    ),
    json_out: Path = typer.Option(None, "--json", help="Also write the scores to this JSON file."),
    wer: str = typer.Option(
        "standard",
        "--wer",
        help="--task gloss: 'standard' (Levenshtein, the field's WER) or 'reference' "
        "(TwoStream-SLT's weighted alignment, glosses upper-cased first).",
    ),
) -> None:
    """Score hypotheses against references as TwoStream-SLT reports: WER, BLEU-1..4, ROUGE-L.

    FILEs are plain text (aligned by line) or JSONL clips (matched by `name`,
    scoring their `gloss` or `text` field).
    """
    from dataclasses import asdict

    from slt_serve.fileio import write_json
    from slt_training import metrics

    metrics.check_task(task)
    if task == "text" and lang is None:
        raise SltError(
            "--task text needs --lang (e.g. de, zh, vi, en): Chinese is scored on characters"
        )
    lang = metrics.check_lang(lang) if lang is not None else None
    if task == "text" and phoenix_cleanup:
        raise SltError("--phoenix-cleanup applies to glosses; use it with --task gloss")
    if task == "text" and wer != "standard":
        raise SltError("--wer applies to glosses; use it with --task gloss")
    if phoenix_cleanup is None:
        phoenix_cleanup = metrics.default_phoenix_cleanup(task, lang)
    hyps, refs = metrics.load_pairs(hyp, ref, task)
    if task == "gloss":
        scores = metrics.evaluate_gloss(hyps, refs, phoenix_cleanup=phoenix_cleanup, wer=wer)
    else:
        scores = metrics.evaluate_text(hyps, refs, lang)
    typer.echo(f"{task}: {hyp} vs {ref}")
    _print_scores(scores)
    if json_out is not None:
        write_json(
            json_out,
            {
                "task": task,
                "lang": lang,
                **({"wer": wer} if task == "gloss" else {}),
                "hyp": str(hyp),
                "ref": str(ref),
                "scores": asdict(scores),
            },
        )
        typer.echo(f"wrote {json_out}")
    else:
        echo_next("add --json FILE to keep these scores")


def _print_scores(scores) -> None:
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    table = Table("metric", "value")
    for name, value in asdict(scores).items():
        if name != "signature":
            table.add_row(
                name,
                f"{value:.{3 if name == 'bp' else 2}f}" if isinstance(value, float) else str(value),
            )
    Console().print(table)
    if getattr(scores, "signature", None):
        on = " on characters" if scores.level == "char" else ""
        typer.echo(f"sacrebleu{on}: {scores.signature}")
