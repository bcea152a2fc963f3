"""`slt translate --engine ray`: the plain batch's rows, from a local Ray cluster (2 CPUs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from slt_serve import batch, ray_batch
from slt_serve.extras import extra_for_module
from slt_serve.sample_model import bundle_path, sample_videos
from slt_serve.translator import TranslateOptions, Translator

try:
    import ray
except ImportError:
    ray = None


@pytest.fixture(scope="module")
def cluster():
    if ray is None:
        pytest.skip("needs Ray: pip install 'slt-serve[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def inputs(tmp_path):
    """The sample clips (one under a name that is not UTF-8), a broken file and a missing one."""
    folder = tmp_path / "in"
    folder.mkdir()
    clips = sample_videos()
    odd = os.fsdecode(os.fsencode(str(folder)) + b"/latin1_\xff.mp4")
    shutil.copy(clips[0], odd)
    broken = folder / "broken.mp4"
    broken.write_bytes(b"not a video at all\n" * 10)
    return [*map(str, clips), odd, str(broken), str(folder / "missing.mp4")]


def rows(path):
    """Rows by path, without the timings (which no two runs share)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        row.pop("timings_ms", None)
        out[row["path"]] = row
    return out


def test_ray_rows_equal_the_plain_batch_and_resume(cluster, tmp_path):
    paths = inputs(tmp_path)
    translator = Translator.from_bundle(bundle_path(), TranslateOptions(device="cpu"))
    plain = batch.ResultsFile(tmp_path / "plain.jsonl", "jsonl")
    want = batch.run(translator, paths, plain, workers=2, progress=False)
    plain.close()

    out = batch.ResultsFile(tmp_path / "ray.jsonl", "jsonl")
    apart = ray_batch.RayOptions(cpus_per_actor=0.5)  # not the decode's 1 CPU: decode tasks apart
    got = ray_batch.run(bundle_path(), paths, out, options=TranslateOptions(device="cpu"), ray_options=apart, progress=False)  # fmt: skip
    out.close()
    assert got == want and (got.translated, got.failed) == (3, 2)
    ray_rows = rows(tmp_path / "ray.jsonl")
    assert ray_rows == rows(tmp_path / "plain.jsonl")
    assert all(ray_rows[p]["ok"] and ray_rows[p]["text"] for p in paths[:3])
    assert "not a readable video" in ray_rows[paths[3]]["error"]
    timings = json.loads((tmp_path / "ray.jsonl").read_text().splitlines()[0])["timings_ms"]
    assert timings["decode"] > 0 and timings["total"] >= timings["decode"] + timings["s2g"]

    # a rerun skips every input; --retry-errors translates the two error rows again
    out = batch.ResultsFile(tmp_path / "ray.jsonl", "jsonl")
    again = ray_batch.run(bundle_path(), paths, out, progress=False)
    retried = ray_batch.run(bundle_path(), paths, out, retry_errors=True, progress=False)
    out.close()
    assert (again.translated, again.skipped, again.failed_before) == (0, 5, 2)
    assert (retried.translated, retried.failed, retried.skipped) == (0, 2, 3)


def test_slt_translate_engine_ray_on_a_running_cluster_with_a_shard(cluster, tmp_path):
    paths = inputs(tmp_path)[:3]  # the folder holds the name that is not UTF-8: Ray's driver
    folder = tmp_path / "in"  # cannot start with such a name among its own arguments
    for clip in paths[:2]:
        shutil.copy(clip, folder)
    (folder / "broken.mp4").unlink()
    paths = batch.discover([folder])
    index = batch.shard_of(paths[0], 2)  # a shard with at least one input (tmp names vary)
    shard = [p for p in paths if batch.shard_of(p, 2) == index]
    out = tmp_path / "r.csv"
    r = subprocess.run(
        [sys.executable, "-m", "slt_serve.cli", "translate", folder, "--sample", "--out", out,
         "--engine", "ray", "--ray-address", cluster, "--shard", f"{index}/2", "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"translated {len(shard)}, failed 0" in r.stdout
    written = batch.ResultsFile(out, "csv")
    written.close()
    assert sorted(written.done) == sorted(written.key(p) for p in shard)


def test_without_ray_the_command_names_the_extra(tmp_path):
    """Ray hidden from the interpreter: one line naming the extra, and nothing written."""
    out = tmp_path / "r.jsonl"
    code = (
        "import sys; sys.modules['ray'] = None; from slt_serve.cli import main; "
        f"sys.argv = ['slt', 'translate', '--sample', '--engine', 'ray', '--out', {str(out)!r}]; main()"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and extra_for_module("ray") == "ray"
    assert r.stderr.strip() == "error: this command needs ray, which is not installed: pip install 'slt-serve[ray]'"
    assert not out.exists()
