"""The `slt` command as a user meets it: help, one-line errors, exit codes."""

import subprocess
import sys

import pytest

from slt_training.data.annotations import Clip, write_jsonl


def slt(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "slt_serve.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_help_lists_the_stages():
    r = slt("--help")
    assert r.returncode == 0
    for command in ("data", "evaluate"):
        assert command in r.stdout
    r = slt("data", "--help")
    for command in ("import-folder", "gloss-from-text", "vocab", "frames", "synth", "check"):
        assert command in r.stdout


def test_user_error_is_one_line_and_exit_2(tmp_path):
    r = slt("data", "vocab", str(tmp_path / "nowhere"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.startswith("error: ") and "train" in r.stderr
    assert "Traceback" not in r.stderr


def test_usage_error_exit_code():
    r = slt("data", "vocab", "--min-freq", "lots", ".")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_vocab_and_check_on_a_tiny_dataset(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [Clip(name="a", gloss="A B", text="a b", num_frames=3)])
    write_jsonl(tmp_path / "dev.jsonl", [Clip(name="b", gloss="A C", text="a c", num_frames=4)])
    r = slt("data", "vocab", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "5 entries" in r.stdout and "50.00" in r.stdout  # dev: C is OOV, 1 of 2 tokens
    assert (tmp_path / "gloss_vocab.json").is_file()
    r = slt("data", "check", str(tmp_path), "--no-probe")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "dataset OK" in r.stdout and "without a video path" in r.stdout


def test_check_fails_on_missing_videos(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [Clip(name="a", gloss="A", video="videos/a.mp4")])
    r = slt("data", "check", str(tmp_path), "--no-probe")
    assert r.returncode == 1
    assert "1 clip(s) point at videos that do not exist" in r.stdout


@pytest.mark.parametrize(
    "module",
    [
        "slt_serve.cli",
        "slt_serve.vocab",
        "slt_serve.fileio",
        "slt_serve.doctor",
        "slt_serve.api",
        "slt_serve.batch",
    ],
)
def test_runtime_never_imports_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_overlay_draws_a_clips_keypoints(tmp_path):
    from slt_serve.video import read_frames
    from slt_training.data.annotations import load_split
    from slt_training.data.synth.corpus import generate, options_for

    generate(tmp_path, options_for("cpu", clips=4, glosses=16, size=64, signers=1))
    clip = load_split(tmp_path, "train")[0]
    r = slt("data", "overlay", str(tmp_path), clip.name, "--out", str(tmp_path / "o.mp4"))
    assert r.returncode == 0, r.stderr
    drawn, plain = read_frames(tmp_path / "o.mp4"), read_frames(tmp_path / clip.video)
    assert drawn.shape == plain.shape
    assert abs(drawn.astype(int) - plain).mean() > 1  # the skeleton is on the frames
    (tmp_path / "keypoints" / f"{clip.name}.npz").unlink()
    r = slt("data", "overlay", str(tmp_path), clip.name, "--out", str(tmp_path / "o.png"))
    assert r.returncode == 2 and "slt data keypoints" in r.stderr


# --- a command whose optional extra is not installed -----------------------------------------

# `slt` with some modules made unimportable, as in an install without their extra.
WITHOUT = (
    "import sys\n"
    "for m in sys.argv[1].split(','):\n"
    "    sys.modules[m] = None  # import m raises ModuleNotFoundError, as when not installed\n"
    "sys.argv = ['slt', *sys.argv[2:]]\n"
    "from slt_serve.cli import main\n"
    "main()\n"
)


def slt_without(modules, *args):
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, ",".join(modules), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "modules, args, extra",
    [
        (["torch"], ["train", "s2g", "configs/synth/s2g_single.yaml"], "train"),
        (["torch", "transformers"], ["train", "g2t", "configs/synth/g2t.yaml"], "train"),
        (["gradio"], ["demo", "--sample"], "demo"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(modules, args, extra):
    r = slt_without(modules, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert f"slt-serve[{extra}]" in lines[0]


def test_the_extra_of_a_module_comes_from_the_package_metadata():
    from slt_serve.extras import extra_for_module, install_hint

    assert extra_for_module("torch") == "train"
    assert extra_for_module("pose_format.numpy") == "train"  # a submodule: its top level
    assert extra_for_module("gradio") == "demo"
    assert extra_for_module("jieba") == "zh"
    assert extra_for_module("numpy") is None  # core: not an extra
    hint = install_hint(ModuleNotFoundError("No module named 'torch'", name="torch"))
    assert "pip install 'slt-serve[train]'" in hint
    assert install_hint(ModuleNotFoundError("No module named 'nope'", name="nope")) is None


def test_doctor_dataset_comes_from_the_training_plugin(tmp_path):
    # the plugin (registered when slt_serve.cli loads) gave doctor the training stack's reader
    import slt_serve.cli  # noqa: F401
    from slt_serve import doctor
    report = doctor.run_doctor(tmp_path / "nowhere")
    assert report.failed and report.next_step.startswith("slt data import-folder")


def test_every_command_is_there_without_the_optional_extras():
    """The plugins load without torch, transformers or Gradio: their commands are listed, and
    only running one that needs an extra names it (above)."""
    r = slt_without(["torch", "transformers", "gradio"], "--help")
    assert r.returncode == 0, r.stderr
    for command in ("doctor", "data", "train", "features", "export", "pipeline", "serve", "demo"):
        assert f" {command} " in r.stdout, (command, r.stdout)


def test_memory_options_reach_the_cli(tmp_path):
    """--threads reaches onnxruntime (a bad count is one line); a serving --window-frames
    overrides the bundle's; export's --window-frames is checked before any run is read."""
    out = tmp_path / "r.jsonl"
    r = slt("translate", "--sample", "--threads", "1", "--out", out)
    assert r.returncode == 0 and "translated 2, failed 0" in r.stdout, r.stdout + r.stderr
    r = slt("translate", "--sample", "--threads", "-1", "--out", tmp_path / "b.jsonl")
    assert r.returncode == 2 and r.stderr.strip().endswith("threads must be 0 (OMP_NUM_THREADS, else every core) or more, got -1")  # fmt: skip
    r = slt("translate", "--sample", "--window-frames", "8", "--out", tmp_path / "w.jsonl")
    assert r.returncode == 0 and "translated 2, failed 0" in r.stdout, r.stdout + r.stderr
    r = slt("translate", "--sample", "--window-frames", "6", "--out", tmp_path / "w6.jsonl")
    assert r.returncode == 2 and "window_frames 6 must be a positive multiple of 4" in r.stderr
    r = slt("export", "model", tmp_path / "no-run", "--out", tmp_path / "b", "--window-frames", "6")
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --window-frames 6: give a positive multiple of 4, e.g. 128"
