"""A point as a person sees it: a PNG drawn from its array, its image file, or a table row."""

from __future__ import annotations

import io
import math

import numpy as np

from jaxal.annotate.data import LabelingData

MEDIA_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".bmp": "image/bmp",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}


class Renderer:
    """Pictures and rows of one pool's points.

    Array images are scaled to 0..255 by the pool's smallest and largest values (uint8
    pools as they are), so every point is drawn on the same scale.
    """

    def __init__(self, data: LabelingData) -> None:
        self.data = data
        raw = data.raw
        if raw.dtype == np.uint8:
            self.low, self.high = 0.0, 255.0
        else:
            self.low, self.high = float(raw.min()), float(raw.max())

    def pixels(self, index: int) -> np.ndarray:
        """uint8 [H, W] or [H, W, 3|4] of point ``index`` of an array pool.

        Raises:
            ValueError: a point that has no image shape.
        """
        point = np.asarray(self.data.raw[index], np.float64)
        if point.ndim == 1:
            side = math.isqrt(point.shape[0])
            if side * side != point.shape[0]:
                raise ValueError(f"point {index} of shape {point.shape} is no square image")
            point = point.reshape(side, side)
        if point.ndim == 3 and point.shape[-1] == 1:
            point = point[..., 0]
        if point.ndim == 3 and point.shape[-1] not in (3, 4):
            point = point[..., 0]
        if point.ndim not in (2, 3):
            raise ValueError(f"point {index} of shape {point.shape} is no image")
        span = self.high - self.low or 1.0
        return np.clip(np.round((point - self.low) / span * 255.0), 0, 255).astype(np.uint8)

    def png(self, index: int, min_side: int = 0) -> bytes:
        """Point ``index`` of an array pool as a PNG, enlarged by a whole factor (nearest
        neighbour) until its shorter side is at least ``min_side``."""
        from PIL import Image

        pixels = self.pixels(index)
        factor = max(1, math.ceil(min_side / min(pixels.shape[:2]))) if min_side else 1
        if factor > 1:
            pixels = np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        return buffer.getvalue()

    def file(self, index: int) -> str | None:
        """The image file of point ``index`` (a folder pool), else None."""
        return None if self.data.files is None else self.data.files[index]

    def columns(self) -> list[str]:
        """The column names of a table pool: ``feature_names`` or ``x0, x1, ...``."""
        width = int(np.prod(self.data.raw.shape[1:]))
        return self.data.feature_names or [f"x{i}" for i in range(width)]

    def row(self, index: int) -> list[tuple[str, float | int]]:
        """Point ``index`` as (column, value) pairs, its values flattened."""
        values = np.asarray(self.data.raw[index]).reshape(-1)
        return [(name, value.item()) for name, value in zip(self.columns(), values, strict=True)]
