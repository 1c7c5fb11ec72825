"""Learned background removers: rembg sessions by name, or a local ONNX saliency network.

Nothing here is imported by the model-free path; onnxruntime and rembg are imported only
when a model is actually loaded. A local ``.onnx`` file runs on onnxruntime when it is
installed, else on OpenCV's DNN module (which ships with opencv-python-headless), so a
u2net-style file works without extra packages.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
from PIL import Image

from ._errors import FinishingError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Input side used when the network declares dynamic spatial dimensions (u2net's own).
DEFAULT_INPUT_SIZE = 320
ONNX_BACKENDS = ("auto", "onnxruntime", "opencv")
# rembg model names, for help texts and error messages (rembg accepts others too).
KNOWN_REMBG_MODELS = (
    "birefnet-general",
    "birefnet-general-lite",
    "isnet-general-use",
    "isnet-anime",
    "u2net",
    "u2netp",
    "silueta",
)


@runtime_checkable
class SaliencyModel(Protocol):
    """Anything that maps an RGB image to a foreground probability map."""

    name: str

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """HxW float32 alpha in [0, 1] for an HxWx3 uint8 RGB image."""
        ...


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -40.0, 40.0)))).astype(np.float32)


def _to_probability(pred: np.ndarray) -> np.ndarray:
    """Squeeze a network output to HxW and map it to [0, 1].

    Logits (values outside [0, 1]) go through a sigmoid; then the map is stretched to the
    full range as rembg does for the u2net family.
    """
    out = np.asarray(pred, dtype=np.float32)
    while out.ndim > 2:
        out = out[0]
    if out.ndim != 2:
        raise FinishingError(f"model output has shape {pred.shape}; expected Nx1xHxW or HxW")
    if float(out.min()) < 0.0 or float(out.max()) > 1.0:
        out = _sigmoid(out)
    lo, hi = float(out.min()), float(out.max())
    if hi - lo > 1e-6:
        out = (out - lo) / (hi - lo)
    return out


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Top-level (field number, value) pairs of a protobuf message."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((field, value))
        elif wire == 2:
            length, pos = _varint(buf, pos)
            out.append((field, buf[pos : pos + length]))
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def _first(fields: list[tuple[int, int | bytes]], number: int) -> bytes:
    for field, value in fields:
        if field == number and isinstance(value, bytes):
            return value
    raise ValueError(f"field {number} missing")


def onnx_input_shape(path: Path) -> tuple[int | str, ...]:
    """Declared shape of an ONNX model's first input, read straight from the protobuf.

    ModelProto.graph(7).input(11)[0].type(2).tensor_type(1).shape(2).dim(1); a dim is
    ``dim_value`` (1) or ``dim_param`` (2). Used when onnxruntime is not installed.
    """
    try:
        graph = _fields(_first(_fields(path.read_bytes()), 7))
        value_info = _fields(_first(graph, 11))
        shape = _fields(_first(_fields(_first(_fields(_first(value_info, 2)), 1)), 2))
        dims: list[int | str] = []
        for field, dim in shape:
            if field == 1 and isinstance(dim, bytes):
                parts = dict(_fields(dim))
                value = parts.get(1)
                dims.append(value if isinstance(value, int) else "?")
        return tuple(dims)
    except (ValueError, IndexError):
        return ()


class OnnxSaliencyModel:
    """A u2net-style ONNX network: 1x3xHxW normalised RGB in, a saliency map out."""

    def __init__(
        self,
        path: str | Path,
        *,
        input_size: int | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        backend: str = "auto",
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FinishingError(f"model={str(path)!r}: no such ONNX file")
        if backend not in ONNX_BACKENDS:
            raise FinishingError(
                f"backend={backend!r} is not supported; allowed values: "
                + ", ".join(repr(b) for b in ONNX_BACKENDS)
            )
        self.name = self.path.name
        self.mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
        self._lock = threading.Lock()
        self._session: Any = None
        self._net: Any = None
        self._input_name = "input"
        declared: tuple[Any, ...] = ()
        if backend in ("auto", "onnxruntime"):
            try:
                import onnxruntime as ort
            except ImportError:
                if backend == "onnxruntime":
                    raise FinishingError(
                        "backend='onnxruntime' needs the onnxruntime package "
                        "(pip install onnxruntime)"
                    ) from None
            else:
                opts = ort.SessionOptions()
                opts.log_severity_level = 3
                try:
                    self._session = ort.InferenceSession(
                        str(self.path), sess_options=opts, providers=["CPUExecutionProvider"]
                    )
                except Exception as exc:  # onnxruntime raises its own exception types
                    raise FinishingError(f"model={str(path)!r}: cannot load: {exc}") from exc
                inp = self._session.get_inputs()[0]
                self._input_name = inp.name
                declared = tuple(inp.shape)
        if self._session is None:
            try:
                self._net = cv2.dnn.readNetFromONNX(str(self.path))
            except cv2.error as exc:
                raise FinishingError(f"model={str(path)!r}: cannot load: {exc}") from exc
            declared = onnx_input_shape(self.path)
        self.backend = "onnxruntime" if self._session is not None else "opencv"
        self.input_size = input_size or self._declared_size(declared)

    @staticmethod
    def _declared_size(shape: tuple[Any, ...]) -> tuple[int, int] | int:
        if len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int):
            return (shape[2], shape[3])
        return DEFAULT_INPUT_SIZE

    def _size(self) -> tuple[int, int]:
        size = self.input_size
        return (size, size) if isinstance(size, int) else size

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """HxW float32 alpha in [0, 1] for an HxWx3 uint8 RGB image."""
        h, w = rgb.shape[:2]
        in_h, in_w = self._size()
        resized = cv2.resize(rgb, (in_w, in_h), interpolation=cv2.INTER_AREA)
        x = resized.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        x = np.ascontiguousarray((x - self.mean) / self.std, dtype=np.float32)
        with self._lock:
            if self._session is not None:
                pred = self._session.run(None, {self._input_name: x})[0]
            else:
                self._net.setInput(x)
                pred = self._net.forward()
        prob = _to_probability(pred)
        return cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR).clip(0.0, 1.0)


class RembgModel:
    """A rembg session (BiRefNet, ISNet, u2net...) chosen by name."""

    def __init__(self, name: str) -> None:
        try:
            import rembg
        except ImportError:
            raise FinishingError(
                f"model={name!r} is a rembg model name, but the optional 'rembg' package is "
                "not installed (pip install 'sticker-maker[cutout-models]'); or pass a path "
                "to a local .onnx file"
            ) from None
        self.name = name
        self._rembg = rembg
        try:
            self._session = rembg.new_session(name)
        except Exception as exc:  # unknown names, failed downloads, bad files
            known = ", ".join(KNOWN_REMBG_MODELS)
            raise FinishingError(
                f"model={name!r}: rembg could not open it ({exc}); known names include {known}"
            ) from exc

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """HxW float32 alpha in [0, 1] for an HxWx3 uint8 RGB image."""
        mask = self._rembg.remove(
            Image.fromarray(rgb, "RGB"), session=self._session, only_mask=True
        )
        arr = np.asarray(mask.convert("L"), dtype=np.float32) / 255.0
        if arr.shape != rgb.shape[:2]:
            arr = cv2.resize(arr, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        return arr


_CACHE: dict[str, SaliencyModel] = {}
_CACHE_LOCK = threading.Lock()


def load_model(model: str | Path | SaliencyModel) -> SaliencyModel:
    """Resolve ``model`` to a loaded remover, reusing earlier loads of the same one.

    ``model`` is a path to a local ``.onnx`` file, a rembg model name such as
    ``"birefnet-general"`` or ``"isnet-general-use"``, or an already loaded model.
    """
    if isinstance(model, SaliencyModel):
        return model
    if not isinstance(model, str | Path):
        raise FinishingError(
            f"model must be a rembg model name, a path to an .onnx file or a loaded model, "
            f"got {type(model).__name__}"
        )
    text = str(model)
    if not text.strip():
        raise FinishingError("model='' is empty; give a rembg model name or an .onnx path")
    key = str(Path(text).resolve()) if Path(text).exists() else text
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    is_path = isinstance(model, Path) or text.lower().endswith(".onnx") or Path(text).exists()
    loaded: SaliencyModel = OnnxSaliencyModel(text) if is_path else RembgModel(text)
    with _CACHE_LOCK:
        _CACHE[key] = loaded
    return loaded
