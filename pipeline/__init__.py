"""`slt pipeline CONFIG`: prepare → S2G → features → G2T → S2T → export → evaluate, in order.

One YAML holds the whole experiment (configs/custom.yaml is the template): a `data`
section shared by every stage, and one section per stage in the shape of that
stage's own config (`slt train s2g|g2t|s2t`), less `run_dir` and the paths that
tie the stages together, which the pipeline fills in:

    RUN_DIR/s2g/        S2G run (checkpoints, metrics.json, features/<split>/)
    RUN_DIR/g2t/        G2T run
    RUN_DIR/s2t/        S2T run, initialised from s2g/ and g2t/
    RUN_DIR/bundle/     the exported ONNX bundle
    RUN_DIR/results.json, results.md   the final WER / BLEU / ROUGE-L table
    RUN_DIR/pipeline.json              what each stage ran on (hashes) and when it finished

Every stage config is validated before anything slow starts. A stage is skipped when
`pipeline.json` records it finished on the same inputs (the stage config's hash, the
dataset's annotation files, the checkpoints it starts from); a stage that was
interrupted resumes from its latest checkpoint; a stage whose inputs changed is run
again, its old folder kept beside it as `<stage>.stale-N`. So the order that matters
(S2G before S2T) cannot be got wrong, and re-running the command after a crash or on a
fresh notebook continues where it stopped.

The package (import name `slt_pipeline`) sits above the others: it may import the
runtime (`slt_serve`), the training stack (`slt_training`) and the exporter
(`slt_export`), and none of them imports it. Its modules, one idea each:

- `plan`: the pipeline YAML, its overrides, resolved and validated into stage configs;
- `state`: `pipeline.json`, what each stage ran on (input hashes), skip / resume / stale;
- `runner`: the stages in order;
- `results`: `results.json`, `results.md` and the table the command prints;
- `cli`: registers `slt pipeline` (entry point group `slt_serve.commands`).
"""
