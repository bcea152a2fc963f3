"""The first user's path, end to end, through the commands a user types (issue: own videos +
Vietnamese text → pseudo-glosses → trained, exported, served).

A folder of videos and a CSV of Vietnamese sentences with no glosses (the synthetic
generator's `folder` layout) → `slt data import-folder` → `gloss-from-text --lang vi` →
`vocab` → `frames` → `slt pipeline` on configs/custom.yaml with only its paths and sizes
changed → `slt serve` on loopback → a held-back video translated over HTTP and scored;
`slt translate` on the same video. Tiny sizes: it proves the path, not the quality.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SIZE = 32


def slt(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """One `slt` command as a user runs it; fails the test with its output if it fails."""
    r = subprocess.run(
        [sys.executable, "-m", "slt_serve.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, f"slt {' '.join(map(str, args))}\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def my_config(path: Path, root: Path, run_dir: Path) -> Path:
    """configs/custom.yaml with what a user sets (paths, frame size) and CI-sized training."""
    raw = yaml.safe_load((REPO / "configs" / "custom.yaml").read_text(encoding="utf-8"))
    raw["run_dir"] = str(run_dir)
    raw["data"] |= {"root": str(root), "frame_size": SIZE, "input_size": SIZE}
    raw["prepare"]["workers"] = 1
    tiny_budget = {"epochs": 1, "batch_size": 4, "grad_accumulation": 1, "cpu_threads": 1}
    raw["s2g"]["model"] |= {"hidden_size": 32, "ff_size": 64, "width": 0.25}
    raw["s2g"]["training"] |= tiny_budget | {"mixed_precision": "no", "num_workers": 0}
    raw["g2t"]["tokenizer"]["vocab_size"] = 300
    raw["g2t"]["model"]["size"] = "tiny"
    raw["g2t"]["training"] |= tiny_budget | {"epochs": 2}
    raw["s2t"]["training"] |= tiny_budget
    for stage in ("g2t", "s2t"):
        raw[stage]["generation"] |= {"num_beams": 2, "max_length": 30}
    raw["evaluate"]["max_clips"] = 2
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.slow
def test_videos_and_vietnamese_sentences_to_a_served_translation(tmp_path):
    raw, root, run_dir = tmp_path / "raw", tmp_path / "vsl", tmp_path / "runs" / "vsl"
    slt("data", "synth", raw, "--lang", "vi", "--layout", "folder", "--clips", 31,
        "--glosses", 16, "--size", SIZE, "--signers", 4, "--workers", 1, "--no-progress")  # fmt: skip

    # hold one video back: the "new video" a user translates after training
    table = raw / "sentences.csv"
    with table.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and not any(r.get("gloss") for r in rows), "the user has no glosses"
    held = rows.pop()
    new_videos = tmp_path / "new_videos"
    new_videos.mkdir()
    held_video = next((raw / "videos").glob(f"{held['name']}.*"))
    held_video = held_video.rename(new_videos / held_video.name)
    with table.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    out = slt("data", "import-folder", raw / "videos", "--table", table, "--out", root).stdout
    assert "next:" in out and "gloss-from-text" in out
    slt("data", "gloss-from-text", root, "--lang", "vi")
    clips = [json.loads(line) for line in (root / "train.jsonl").open(encoding="utf-8")]
    assert all(c["gloss"].strip() for c in clips)
    slt("data", "vocab", root)
    slt("data", "frames", root, "--size", SIZE, "--workers", 1)

    config = my_config(tmp_path / "my.yaml", root, run_dir)
    out = slt("pipeline", config).stdout
    assert "next: slt serve" in out
    for artefact in ("s2g/metrics.json", "g2t/metrics.json", "s2t/metrics.json",
                     "bundle/manifest.json", "results.json", "results.md"):  # fmt: skip
        assert (run_dir / artefact).is_file(), artefact
    results = json.loads((run_dir / "results.json").read_text())
    assert results["bundle"]["dev"]["clips"] >= 1
    assert results["bundle"]["dev"]["same_text_as_pytorch"] == 1.0  # the export's end-to-end check

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "slt_serve.cli", "serve", run_dir / "bundle", "--port", str(port),
         "--workers", "1", "--device", "cpu"],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SLT_TMP_DIR": str(tmp_path / "spool")},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # wait for the server to come up (not a timed assertion)
            assert server.poll() is None, server.communicate()
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "slt serve did not start"
            time.sleep(0.1)
        with held_video.open("rb") as f:
            r = httpx.post(f"{url}/v1/translate", files={"file": (held_video.name, f)}, timeout=120)
        assert r.status_code == 200, r.text
        served = r.json()
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)

    assert served["text"].strip() and served["duration_s"] > 0
    from slt_training.metrics import evaluate_text

    score = evaluate_text([served["text"]], [held["text"]], "vi")
    assert 0.0 <= score.bleu4 <= 100.0 and score.hyp_len > 0

    slt("translate", new_videos, "--bundle", run_dir / "bundle", "--out", tmp_path / "out.jsonl")
    row = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert row["text"] == served["text"]
