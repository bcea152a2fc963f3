"""Offline batch translation: many videos through one bundle into a JSONL or CSV file.

What `slt translate` runs. Inputs are video files, folders (searched recursively
for video extensions) or manifest files (`.txt`/`.lst`/`.list`: one path a line,
relative to the manifest; a line may name a folder of frames). Each input
becomes one row of the output, appended and flushed as soon as it is done, so a
run that is stopped resumes by skipping the inputs already there (a half-written
last row is dropped first). A file that fails becomes an error row and the run
goes on.

`--shard i/n` keeps the inputs whose absolute path hashes to i modulo n: n jobs
of a cluster array, each given the same paths and its own index, split any
collection without talking to each other, never overlap, and together cover it
all; a file keeps its shard when files are added, so a rerun resumes cleanly.

Any file name works, also one that is not valid UTF-8 or holds a newline: JSONL
rows escape what UTF-8 cannot carry (`\\udcff`) and read back as the same path; a
CSV cell holds the path with such bytes and line breaks backslash-escaped, and the
rerun compares paths in that same form. `limits` (`slt translate --api-limits`)
holds every video to the HTTP API's duration, frame and pixel limits.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tqdm import tqdm

from slt_serve.errors import SltError
from slt_serve.video import DecodeLimits, decode_limits, probe

if TYPE_CHECKING:
    from slt_serve.translator import Result, Translator

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
     ".3gp", ".flv", ".wmv", ".ogv"}
)  # fmt: skip
MANIFEST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
FORMATS = ("jsonl", "csv")
CSV_COLUMNS = ("path", "ok", "gloss", "text", "duration_s", "gloss_spans", "timings_ms", "model", "score", "confidence", "low_confidence", "error")  # fmt: skip


@dataclass(frozen=True)
class Summary:
    """What a run did; `failed_before` counts error rows from earlier runs not retried."""

    total: int  # inputs in this shard
    translated: int
    failed: int
    skipped: int  # already in the output
    failed_before: int

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.failed_before == 0


# --- inputs -------------------------------------------------------------------------------


def discover(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Absolute paths of the videos named by files, folders and manifests, first seen first."""
    found: dict[str, None] = {}
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise SltError(f"{path}: no such file or folder; give videos, folders or a manifest")
        if path.is_dir():
            videos = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
            )
            if not videos:
                raise SltError(
                    f"{path}: no videos in this folder or below (looked for "
                    f"{', '.join(sorted(VIDEO_SUFFIXES))}); a folder of frames goes in a manifest"
                )
            found.update((os.path.abspath(p), None) for p in videos)
        elif path.suffix.lower() in MANIFEST_SUFFIXES:
            found.update((p, None) for p in read_manifest(path))
        else:
            found[os.path.abspath(path)] = None
    return list(found)


def read_manifest(path: Path) -> list[str]:
    """One path a line (blank lines and `#` comments skipped), relative to the manifest."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SltError(
            f"{path}: not a UTF-8 text manifest; a manifest lists one video path a line"
        ) from None
    base = path.parent
    lines = (line.strip() for line in text.splitlines())
    return [os.path.abspath(base / line) for line in lines if line and not line.startswith("#")]


def parse_shard(spec: str) -> tuple[int, int]:
    """`i/n` with 0 ≤ i < n, as a cluster array's task index and size."""
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise SltError(f"--shard {spec}: expected i/n, e.g. 0/8 (index from 0)") from None
    if not (n >= 1 and 0 <= i < n):
        raise SltError(f"--shard {spec}: need 0 ≤ i < n (the index counts from 0: 0/{n} … {n - 1}/{n})")  # fmt: skip
    return i, n


def shard_of(path: str, n: int) -> int:
    """Which of n shards a path belongs to: a hash of it, the same on every machine."""
    return int.from_bytes(hashlib.sha1(os.fsencode(path)).digest()[:8], "big") % n


def in_shard(paths: list[str], shard: tuple[int, int] | None) -> list[str]:
    if shard is None:
        return paths
    i, n = shard
    return [p for p in paths if shard_of(p, n) == i]


# --- output -------------------------------------------------------------------------------


def format_for(out: Path, fmt: str | None) -> str:
    """The output format: as given, else from the file's suffix (.csv → csv, else jsonl)."""
    if fmt is None:
        return "csv" if out.suffix.lower() == ".csv" else "jsonl"
    if fmt not in FORMATS:
        raise SltError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    return fmt


def default_out(shard: tuple[int, int] | None, fmt: str | None) -> Path:
    ext = fmt or "jsonl"
    return Path(f"results.{shard[0]}-of-{shard[1]}.{ext}" if shard else f"results.{ext}")


class ResultsFile:
    """The output, opened for appending one complete row at a time.

    Opening it reads what earlier runs wrote (path → whether its latest row is a
    success), after cutting off a half-written last line. An exclusive lock
    stops a second `slt translate` from writing the same file at once.
    """

    def __init__(self, path: Path, fmt: str):
        self.path, self.fmt = path, fmt
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[str] = open(path, "a+", encoding="utf-8", newline="")  # noqa: SIM115
        try:
            _lock(self._f, path)
            self.done = self._recover()
        except BaseException:
            self._f.close()
            raise
        if fmt == "csv" and self._f.tell() == 0:
            self._write_line(_csv_line(CSV_COLUMNS))

    def _recover(self) -> dict[str, bool]:
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            keep = raw.rfind(b"\n") + 1
            log.warning("%s: dropping a half-written last row (%d bytes)", self.path, len(raw) - keep)  # fmt: skip
            os.truncate(self.path, keep)
            raw = raw[:keep]
        self._f.seek(0, io.SEEK_END)
        text = raw.decode("utf-8", errors="replace")
        return _rows_jsonl(text, self.path) if self.fmt == "jsonl" else _rows_csv(text, self.path)

    def key(self, path: str) -> str:
        """How `path` reads back from this file: as itself in JSONL, escaped in CSV."""
        return path if self.fmt == "jsonl" else _csv_text(path)

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self._write_line(_json_line(row))
        else:
            self._write_line(_csv_line(_csv_values(row)))
        self.done[self.key(row["path"])] = row["ok"]

    def _write_line(self, line: str) -> None:
        self._f.write(line)
        self._f.flush()

    def close(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()


def _lock(f: IO, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise SltError(
            f"{path}: another `slt translate` is writing this file; wait for it or use --out"
        ) from None


def _rows_jsonl(text: str, path: Path) -> dict[str, bool]:
    done: dict[str, bool] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            done[row["path"]] = bool(row["ok"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise SltError(
                f"{path}:{n}: not a row of slt translate's JSONL; give another --out or fix the line"
            ) from None
    return done


def _rows_csv(text: str, path: Path) -> dict[str, bool]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return {}
    if tuple(rows[0]) != CSV_COLUMNS:
        raise SltError(
            f"{path}: a CSV with other columns than slt translate writes ({', '.join(CSV_COLUMNS)}); "
            "give another --out"
        )
    return {r[0]: r[1] == "true" for r in rows[1:] if len(r) == len(CSV_COLUMNS)}


def _csv_values(row: dict[str, Any]) -> list[str]:
    values = []
    for col in CSV_COLUMNS:
        v = row.get(col, "")
        if v is None:  # score of a result without text
            v = ""
        elif isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, list | dict):
            v = json.dumps(v, ensure_ascii=False)
        values.append(str(v))
    return values


def _json_line(row: dict[str, Any]) -> str:
    """One JSONL row; a path that is not valid UTF-8 is written with \\u escapes instead."""
    line = json.dumps(row, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(row)
    return line + "\n"


def _csv_text(value: str) -> str:
    """A cell's text on one line and valid UTF-8: undecodable bytes and line breaks escaped."""
    text = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _csv_line(values: Iterable[str]) -> str:
    """One CSV row on one line (line breaks inside values are escaped), so a row is a line."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_csv_text(str(v)) for v in values])
    return buf.getvalue()


# --- the run ------------------------------------------------------------------------------


def translate_one(
    translator: Translator, path: str, limits: DecodeLimits | None = None
) -> dict[str, Any]:
    """One output row: the result, or the error that stopped this file. With `limits`, the
    video is refused when its header or any decoded frame is over them, as the API does."""
    try:
        with decode_limits(limits):
            if limits is not None:
                check_declared(path, limits)
            return result_row(path, translator.translate(path))
    except Exception as e:  # a file that breaks the decoder must not stop the batch
        return error_row(path, e)


def result_row(path: str, result: Result) -> dict[str, Any]:
    """The row of a translated input."""
    return {"path": path, "ok": True, **result.to_dict()}


def error_row(path: str, error: Exception) -> dict[str, Any]:
    """The row of an input that failed: a `SltError`'s message, else the exception's type too."""
    if isinstance(error, SltError):
        return {"path": path, "ok": False, "error": str(error)}
    log.debug("%s failed", path, exc_info=error)
    return {"path": path, "ok": False, "error": f"{type(error).__name__}: {error}"}


def check_declared(path: str, limits: DecodeLimits) -> None:
    """Refuse a video whose header says it is over the limits, before decoding it."""
    info = probe(path)
    if limits.max_seconds is not None and info.duration_s > limits.max_seconds:
        raise SltError(
            f"{path} lasts {info.duration_s:.1f} s; the limit is {limits.max_seconds:g} s: "
            "cut it into shorter clips"
        )
    if limits.max_frames is not None and info.num_frames > limits.max_frames:
        raise SltError(
            f"{path} has {info.num_frames:,} frames; the limit is {limits.max_frames:,}: "
            "lower its frame rate or cut it"
        )


def failure_line(row: dict[str, Any]) -> str:
    """What to print for a failed row: its path once (the error usually starts with it)."""
    path, error = row["path"], row["error"]
    return f"failed: {error}" if error.startswith(path) else f"failed: {path}: {error}"


@dataclass(frozen=True)
class Plan:
    """Which inputs a run translates, and what the results file already holds of the others."""

    todo: list[str]
    total: int
    skipped: int  # already in the output
    failed_before: int  # error rows from earlier runs not retried


def plan(inputs: list[str], results: ResultsFile, *, retry_errors: bool = False) -> Plan:
    """The inputs not yet in `results` (and, with `retry_errors`, those whose row is an error)."""
    done, key = results.done, results.key
    todo = [p for p in inputs if key(p) not in done or (retry_errors and not done[key(p)])]
    retried = set(todo)
    failed_before = sum(
        1 for p in inputs if key(p) in done and not done[key(p)] and p not in retried
    )
    return Plan(todo, len(inputs), len(inputs) - len(todo), failed_before)


def record(
    rows: Iterable[dict[str, Any]],
    results: ResultsFile,
    planned: Plan,
    *,
    progress: bool | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> Summary:
    """Write each row as it comes (a failure printed once), counted into the run's summary."""
    translated = failed = 0
    # progress=None: a bar only when stderr is a terminal (tqdm's own rule)
    bar = tqdm(total=len(planned.todo), unit="video", disable=None if progress is None else not progress)  # fmt: skip
    try:
        for row in rows:
            results.write(row)
            translated += row["ok"]
            failed += not row["ok"]
            if not row["ok"]:
                bar.write(failure_line(row), file=sys.stderr)
            if on_row:
                on_row(row)
            bar.update(1)
    finally:
        bar.close()
    return Summary(planned.total, translated, failed, planned.skipped, planned.failed_before)


def run(
    translator: Translator,
    inputs: list[str],
    results: ResultsFile,
    *,
    workers: int = 1,
    retry_errors: bool = False,
    progress: bool | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    limits: DecodeLimits | None = None,
) -> Summary:
    """Translate the inputs not yet in `results`, `workers` at a time; rows in completion order."""
    if workers < 1:
        raise SltError(f"--workers {workers}: must be at least 1")
    planned = plan(inputs, results, retry_errors=retry_errors)
    rows = _translated(translator, planned.todo, workers, limits)
    return record(rows, results, planned, progress=progress, on_row=on_row)


def _translated(
    translator: Translator, todo: list[str], workers: int, limits: DecodeLimits | None
) -> Iterator[dict[str, Any]]:
    """The rows of `todo`, `workers` translated at once, as each is done."""
    with ThreadPoolExecutor(workers, thread_name_prefix="slt-batch") as pool:
        pending: set = set()
        queue = iter(todo)
        try:
            while True:
                while len(pending) < 2 * workers and (path := next(queue, None)) is not None:
                    pending.add(pool.submit(translate_one, translator, path, limits))
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        finally:  # stopped (an error, Ctrl-C, the consumer gone): queued inputs are dropped
            for future in pending:
                future.cancel()
