"""`slt train …` and the commands around training: `slt features`, `slt prune-mbart`."""

from __future__ import annotations

from pathlib import Path

import typer

from slt_serve.errors import SltError

from .common import ConfigArg, OverrideOpt, ResumeOpt, echo_next

app = typer.Typer(
    help="Train a stage from a YAML config (configs/): s2g, g2t, s2t.", no_args_is_help=True
)


def _train(config_type: type, train, config: Path, override: list[str], resume: bool):
    """Load CONFIG (+ overrides), log INFO lines, run the stage's `train`: (cfg, result)."""
    import logging

    from slt_training.config import load_config

    cfg = load_config(config, config_type, override or [])
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return cfg, train(cfg, resume=resume)


def _echo_best(result, scores: str, beam: int) -> None:
    """The best epoch's scores, where they are, and whether a time/step budget stopped the run."""
    from slt_training.runs import METRICS_FILE

    typer.echo(f"{result.run_dir}: best epoch {result.best_epoch}, {scores} (beam {beam})")
    typer.echo(
        f"best checkpoint {result.best_checkpoint}; scores in {result.run_dir / METRICS_FILE}"
    )
    if result.stopped_early:
        typer.echo("stopped by training.max_minutes / max_steps; --resume continues it")


def _train_translation(config_type: type, train, config: Path, override: list[str], resume: bool):
    """`_train` a G2T or S2T stage and echo its best BLEU-4 / ROUGE-L: the result, or None on a
    process that is not the main one."""
    cfg, result = _train(config_type, train, config, override, resume)
    if not result.scores:  # not the main process
        return None
    scores = ", ".join(
        f"{split} BLEU-4 {s['bleu4']:.2f} ROUGE-L {s['rouge_l']:.2f}"
        for split, s in result.scores.items()
    )
    _echo_best(result, scores, cfg.generation.num_beams)
    return result


@app.command("s2g")
def train_s2g(
    config: Path = ConfigArg,
    resume: bool = ResumeOpt,
    override: list[str] = OverrideOpt,
) -> None:
    """Train sign-to-gloss recognition (SingleStream or TwoStream, CTC); dev WER every epoch.

    Several GPUs or nodes: `accelerate launch -m slt_serve.cli train s2g CONFIG`.
    """
    from slt_training.config import S2GConfig
    from slt_training.stages import s2g

    cfg, result = _train(S2GConfig, s2g.train, config, override, resume)
    if not result.scores:  # not the main process
        return
    scores = ", ".join(f"{split} WER {s['wer']:.2f}" for split, s in result.scores.items())
    _echo_best(result, scores, cfg.training.eval_beam_size)
    echo_next(f"slt features {config} --split train,dev,test")


@app.command("g2t")
def train_g2t(
    config: Path = ConfigArg,
    resume: bool = ResumeOpt,
    override: list[str] = OverrideOpt,
) -> None:
    """Train gloss-to-text translation (mBART from scratch or a pruned pretrained folder);
    dev BLEU-4 every epoch, the best checkpoint scored on dev and test with beam search."""
    from slt_training.config import G2TConfig
    from slt_training.stages import g2t

    result = _train_translation(G2TConfig, g2t.train, config, override, resume)
    if result is not None:
        echo_next(f"set g2t_run: {result.run_dir} in an S2T config, then slt train s2t CONFIG")


@app.command("s2t")
def train_s2t(
    config: Path = ConfigArg,
    resume: bool = ResumeOpt,
    override: list[str] = OverrideOpt,
) -> None:
    """Train sign-to-text translation on an S2G run's features (or end to end on video with
    finetune_s2g), mBART initialised from a G2T run; dev BLEU-4 every epoch."""
    from slt_training.config import S2TConfig
    from slt_training.stages import s2t

    result = _train_translation(S2TConfig, s2t.train, config, override, resume)
    if result is not None:
        echo_next(f"export the model in {result.run_dir} (slt export), or translate with it")


def features(
    config: Path = ConfigArg,
    split: str = typer.Option("train,dev,test", "--split", help="Splits, e.g. train,dev,test."),
    out: Path = typer.Option(None, help="Output folder (default: RUN_DIR/features)."),
    batch_size: int = typer.Option(1, help="Clips per forward pass (1: exact, no padding)."),
    override: list[str] = OverrideOpt,
) -> None:
    """Write per-clip visual features and gloss log-probs of the best S2G checkpoint."""
    from slt_training.config import S2GConfig, load_config
    from slt_training.data.annotations import parse_splits
    from slt_training.stages.features import extract

    parse_splits(split)
    if batch_size < 1:
        raise SltError(f"--batch-size {batch_size}: need at least 1")
    cfg = load_config(config, S2GConfig, override or [])
    report = extract(cfg, split, out, batch_size)
    for name, n in report.clips.items():
        typer.echo(f"wrote {report.out_dir / name}: {n} clips, {report.steps[name]} feature steps")
    typer.echo(f"from {report.checkpoint} (sha256 {report.checkpoint_sha256[:12]}…)")
    echo_next("set s2g_run in an S2T config (configs/*/s2t.yaml), then slt train s2t CONFIG")


def prune_mbart(
    pretrained: Path = typer.Argument(
        ...,
        help="Pretrained mBART folder (mbart-large-cc25 layout: config.json, weights, "
        "tokenizer.json).",
    ),
    dataset: Path = typer.Option(..., "--dataset", help="Dataset root whose text is kept."),
    out: Path = typer.Option(..., "--out", help="Folder for the pruned model and tokenizer."),
    lang: str = typer.Option("de_DE", help="mBART language token of the text (de_DE, zh_CN, …)."),
    splits: str = typer.Option(
        "train,dev,test", help="Splits whose text and glosses are kept (those present are read)."
    ),
    gloss_tokens: bool = typer.Option(
        True, "--gloss-tokens/--no-gloss-tokens", help="Add one token per gloss."
    ),
) -> None:
    """Shrink an mBART's vocabulary to the tokens a corpus uses and add gloss tokens."""
    from slt_training.data.annotations import SPLITS, available_splits, load_split
    from slt_training.text.mbart import check_pretrained_folder
    from slt_training.text.prune import VOCAB_MAP_FILE
    from slt_training.text.prune import prune_mbart as prune

    wanted = [s.strip() for s in splits.split(",") if s.strip()]
    if not wanted or set(wanted) - set(SPLITS):
        raise SltError(f"--splits {splits!r}: give a comma-separated subset of {SPLITS}")
    check_pretrained_folder(pretrained)
    present = [s for s in available_splits(dataset) if s in wanted]
    if not present:
        raise SltError(f"{dataset}: none of the splits {wanted} is there")
    clips = [c for s in present for c in load_split(dataset, s)]
    texts, glosses = [c.text for c in clips], [c.glosses for c in clips]
    r = prune(pretrained, texts, glosses, out, lang, gloss_tokens)
    typer.echo(
        f"read {len(clips)} clips ({', '.join(present)}); vocabulary {r.old_vocab} → {r.kept} "
        f"tokens + {r.glosses} glosses; parameters {r.parameters_before / 1e6:.1f} M → "
        f"{r.parameters_after / 1e6:.1f} M"
    )
    typer.echo(f"wrote {out}: config.json, model.safetensors, tokenizer.json, {VOCAB_MAP_FILE}")
    echo_next(f"set model.pretrained: {out} in a G2T config, then slt train g2t CONFIG")
