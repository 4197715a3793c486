"""The annotated output of a predict job: frames into an H.264 mp4, or images beside the results.

Called on the loop's helper thread (:class:`~.pipeline.Behind`), in the frames' order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..jobs.media_source import IMAGE_SUFFIXES, KIND_STREAM
from .common import JobContext
from .media import STREAM_FPS, Frame, FrameSource, LiveSource
from .video_out import Mp4Writer


def _video_name(source: FrameSource) -> str:
    if isinstance(source, LiveSource):
        return "stream.mp4" if source.kind == KIND_STREAM else f"{Path(source.value).name}.mp4"
    return f"{Path(source.shown).stem or 'video'}.mp4"


class Annotator:
    """Annotated output: frames into the mp4, or images beside the results."""

    def __init__(self, ctx: JobContext, source: FrameSource, save: bool) -> None:
        self.ctx = ctx
        self.enabled = save
        self.video = (
            Mp4Writer(ctx.run_dir / _video_name(source), source.fps or STREAM_FPS)
            if save and source.video
            else None
        )

    def add(self, frame: Frame, result: Any) -> None:
        """Draw ``result`` and keep it (a plot that fails turns annotation off, with a warning)."""
        if not self.enabled:
            return
        try:
            plotted = result.plot()
        except Exception as exc:  # a task ultralytics cannot draw: the results still count
            self.enabled = False
            self.ctx.journal.warning("no_annotation", f"annotated output stops here: {exc}")
            return
        if self.video is not None:
            self.video.write(plotted)
            return
        import cv2

        out = self.ctx.run_dir / Path(frame.name).name
        if out.suffix.lower() not in IMAGE_SUFFIXES:
            out = out.with_suffix(".jpg")
        cv2.imwrite(str(out), plotted)

    def close(self, failed: bool) -> Path | None:
        """Finish the mp4 (on success, stop and failure) and announce it."""
        if self.video is None:
            return None
        try:
            path = self.video.close()
        except Exception as exc:
            self.video.discard()
            if not failed:
                raise
            self.ctx.journal.warning("video_not_written", f"the annotated video failed: {exc}")
            return None
        if path is not None:
            self.ctx.journal.artifact(path, "video")
        return path
