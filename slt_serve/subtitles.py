"""Subtitles of a translation: SubRip (.srt) or WebVTT (.vtt), timed by the gloss spans.

    cues = subtitle_cues(result, glosses=True)
    Path("clip.srt").write_text(to_srt(cues))        # or to_vtt(cues), or:
    write_subtitles("clip.vtt", result, "vtt", glosses=True)

One cue per sentence: the translation (an S2G bundle's: the gloss sequence), from the
start of the first gloss to the end of the last (the whole video when no gloss was
recognised). A translation made in segments (a long video) is one cue too: the
`Result` keeps one text. With `glosses`, every gloss is a cue of its own over its span,
at the top of the picture in WebVTT (`line:0`; SRT has no standard placement, so its
players stack the cues). Cue text never holds a blank line (it would end an SRT cue) or
`-->` (it would start a WebVTT timing line).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write

FORMATS = ("srt", "vtt")
MIN_CUE_S = 0.1  # a cue is shown at least this long (a gloss of one step can be shorter)


@dataclass(frozen=True)
class Cue:
    """One subtitle: text shown from `start_s` to `end_s` (seconds from the video start)."""

    start_s: float
    end_s: float
    text: str
    top: bool = False  # drawn at the top of the picture (gloss cues), where the format can


def subtitle_cues(result, glosses: bool = False) -> list[Cue]:
    """The sentence cue and, with `glosses`, one cue per gloss span, in start order."""
    spans = result.gloss_spans
    text = result.text or result.gloss
    cues = []
    if text:
        start = spans[0].start_s if spans else 0.0
        end = spans[-1].end_s if spans else result.duration_s
        cues.append(_cue(start, end, text, result.duration_s))
    if glosses:
        cues += [_cue(s.start_s, s.end_s, s.gloss, result.duration_s, top=True) for s in spans]
    return sorted(cues, key=lambda c: (c.start_s, c.top))


def _cue(start: float, end: float, text: str, duration: float, top: bool = False) -> Cue:
    end = max(end, start + MIN_CUE_S)
    if duration > MIN_CUE_S:
        end = min(end, duration)
        start = min(start, end - MIN_CUE_S)
    clean = " ".join(text.split()).replace("-->", "→")
    return Cue(round(max(0.0, start), 3), round(end, 3), clean, top)


def _clock(seconds: float, separator: str) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{separator}{ms:03d}"


def to_srt(cues: list[Cue]) -> str:
    """SubRip text: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a blank line after each."""
    blocks = [
        f"{i}\n{_clock(c.start_s, ',')} --> {_clock(c.end_s, ',')}\n{c.text}\n"
        for i, c in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(cues: list[Cue]) -> str:
    """WebVTT text: the `WEBVTT` header, then cues (`HH:MM:SS.mmm`; gloss cues at the top)."""
    blocks = ["WEBVTT\n"]
    for c in cues:
        settings = " line:0" if c.top else ""
        blocks.append(f"{_clock(c.start_s, '.')} --> {_clock(c.end_s, '.')}{settings}\n{c.text}\n")
    return "\n".join(blocks)


def write_subtitles(path: str | os.PathLike, result, fmt: str, glosses: bool = False) -> Path:
    """`result`'s cues as an `fmt` ("srt" or "vtt") file at `path`, written atomically."""
    if fmt not in FORMATS:
        raise SltError(f"subtitle format {fmt!r}: choose one of {', '.join(FORMATS)}")
    cues = subtitle_cues(result, glosses)
    text = to_srt(cues) if fmt == "srt" else to_vtt(cues)
    path = Path(path)
    with atomic_write(path) as f:
        f.write(text)
    return path


def subtitle_names(videos: list[str], fmt: str) -> dict[str, str]:
    """A file name per video: `STEM.fmt`, or `STEM-HASH.fmt` where two videos share a stem."""
    stems = {v: Path(v).stem or "video" for v in videos}
    shared = Counter(stems.values())
    return {
        v: f"{stem}-{hashlib.sha1(os.fsencode(v)).hexdigest()[:8]}.{fmt}"
        if shared[stem] > 1
        else f"{stem}.{fmt}"
        for v, stem in stems.items()
    }


class SubtitleFolder:
    """`slt translate --format srt|vtt`: each translated row's subtitles as a file in `folder`
    (names from `subtitle_names` over all the run's videos); `on_row` is batch.run's hook."""

    def __init__(self, folder: str | os.PathLike, fmt: str, videos: list[str], glosses: bool):
        if fmt not in FORMATS:
            raise SltError(f"subtitle format {fmt!r}: choose one of {', '.join(FORMATS)}")
        self.folder, self.fmt, self.glosses = Path(folder), fmt, glosses
        self.names = subtitle_names(videos, fmt)
        self.written = 0

    def on_row(self, row: dict) -> None:
        if not row.get("ok"):
            return
        from slt_serve.translator import Result

        name = self.names.get(row["path"]) or subtitle_names([row["path"]], self.fmt)[row["path"]]
        write_subtitles(self.folder / name, Result.from_dict(row), self.fmt, self.glosses)
        self.written += 1
