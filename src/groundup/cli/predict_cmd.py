"""``groundup predict RUN_DIR INPUT``: class predictions of a saved run for new inputs.

INPUT is an ``.npz`` file (array ``x``, or its only array; uint8 pixels are scaled to
[0, 1], floats are taken as they are) or an image (PNG, JPEG, ...) of one digit or garment.
An image is turned into the MNIST format: grey levels, white on black (a light background
is inverted), the ink's bounding box scaled to 20 pixels and centred by its centre of mass
in 28 × 28. Prints CSV: ``index,label,probability[,name]`` (``--top K`` adds the next K-1).
"""

from __future__ import annotations

import argparse
import io as _io
import sys
from pathlib import Path
from typing import Any

import numpy as np

from groundup import _files
from groundup._checks import check_number, value_error
from groundup.functions import softmax
from groundup.io import npz_headers, write_text_atomic

# A photo of a digit needs far fewer; larger images are refused before they are decoded.
MAX_PIXELS = 4096 * 4096
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("predict", help="predict classes for an .npz of inputs or an image",
                       description=__doc__.splitlines()[0])
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by groundup train")
    p.add_argument("input", metavar="INPUT", help="an .npz file or an image file")
    p.add_argument("--top", type=int, default=1, help="also list the next most likely classes")
    p.add_argument("--model-file", default=None, help="a model .npz other than "
                                                      "RUN_DIR/model.npz")
    p.add_argument("--out", default=None, help="write the CSV to this file instead of stdout")
    p.set_defaults(func=run)


def read_image(path: Path) -> np.ndarray:
    """A 28 × 28 float32 MNIST-style image (white ink on black, in [0, 1])."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ModuleNotFoundError as exc:
        raise RuntimeError("reading images needs Pillow: pip install 'groundup[plot]'") from exc
    try:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # ours is lower: below
        try:
            image = Image.open(path)  # reads the header only
        finally:
            Image.MAX_IMAGE_PIXELS = saved
        with image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise value_error("predict", "INPUT", f"an image of at most {MAX_PIXELS:,} "
                                  "pixels", f"={width} x {height} pixels", f"file: {path}; "
                                  "scale it down (the digit is read at 28 x 28).")
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, rgba)
            grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise value_error("predict", "INPUT", "a readable image file", str(path),
                          str(exc)) from exc
    if grey.mean() > 0.5:  # dark ink on a light background
        grey = 1.0 - grey
    ink = grey > 0.2 * grey.max() if grey.max() > 0 else np.zeros_like(grey, dtype=bool)
    if not ink.any():
        raise value_error("predict", "INPUT", "an image with a visible digit", str(path),
                          "it is blank.")
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = grey[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = 20.0 / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = Image.fromarray(np.uint8(np.clip(crop, 0, 1) * 255)).resize(size, Image.LANCZOS)
    digit = np.asarray(small, dtype=np.float32) / 255.0
    h, w = digit.shape
    total = digit.sum()
    cy = (digit.sum(axis=1) @ np.arange(h)) / total
    cx = (digit.sum(axis=0) @ np.arange(w)) / total
    top = int(np.clip(round(14 - cy), 0, 28 - h))
    left = int(np.clip(round(14 - cx), 0, 28 - w))
    out = np.zeros((28, 28), dtype=np.float32)
    out[top:top + h, left:left + w] = digit
    return out


def read_inputs(path: Path, input_shape: tuple[int, ...]) -> np.ndarray:
    """Inputs shaped ``(N, *input_shape)`` as float32."""
    if not path.is_file():
        raise FileNotFoundError(f"predict: no such file: {path}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        if int(np.prod(input_shape)) != 784:
            raise value_error("predict", "INPUT", "an .npz file for a model whose input is "
                              f"{input_shape}", str(path), "images are read as 28 × 28.")
        x = read_image(path)[None]
    elif path.suffix.lower() == ".npz":
        if any(d.hasobject for _, d in npz_headers(path, owner="predict").values()):
            raise value_error("predict", "INPUT", "an .npz without pickled objects", str(path))
        try:
            with np.load(path, allow_pickle=False) as data:
                names = list(data.files)
                key = "x" if "x" in names else (names[0] if len(names) == 1 else None)
                if key is None:
                    raise value_error("predict", "INPUT", "an .npz with an array named 'x' "
                                      "(or a single array)", str(path), f"it has {names}.")
                x = data[key]
        except ValueError as exc:
            if "predict:" in str(exc):
                raise
            raise value_error("predict", "INPUT", "an .npz without pickled objects",
                              str(path)) from exc
        if x.dtype == np.uint8:
            x = x.astype(np.float32) / 255.0
        elif not np.issubdtype(x.dtype, np.number):
            raise value_error("predict", "INPUT", "numeric arrays", f"={x.dtype}", str(path))
        x = np.asarray(x, dtype=np.float32)
    else:
        raise value_error("predict", "INPUT", "an .npz or image file", str(path))
    size = int(np.prod(input_shape))
    if x.size == size:
        x = x.reshape(1, *input_shape)
    elif x.ndim >= 2 and int(np.prod(x.shape[1:])) == size:
        x = x.reshape(len(x), *input_shape)
    else:
        raise value_error("predict", "INPUT", f"samples of {size} values "
                          f"(shape (N, {', '.join(map(str, input_shape))}))", f"={x.shape}")
    return x


def class_names(config: dict[str, Any]) -> tuple[str, ...] | None:
    from groundup.data.registry import DATASETS

    spec = DATASETS.get(config.get("data_source", {}).get("name", ""))
    return None if spec is None or spec.name == "mnist" else tuple(spec.class_names)


def run(args: argparse.Namespace) -> int:
    from groundup.cli.evaluate_cmd import load_model, load_run

    config, run_path = load_run(args.run_dir)
    if args.out:
        _files.output_file("predict", args.out)  # before any work
    model = load_model(run_path, args.model_file)
    classes = int(np.prod(model.output_shape))
    top = int(check_number("predict", "--top", args.top, low=1, high=classes, integer=True))
    x = read_inputs(Path(args.input), tuple(model.input_shape))
    probs = softmax(model.predict(x, train_flg=False, batch_size=1000))
    names = class_names(config)
    lines = _io.StringIO()
    header = ["index", "label", "probability"] + (["name"] if names else [])
    for k in range(2, top + 1):
        header += [f"label{k}", f"probability{k}"]
    lines.write(",".join(header) + "\n")
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    for i, ranked in enumerate(order):
        row = [str(i), str(ranked[0]), f"{probs[i, ranked[0]]:.6f}"]
        if names:
            row.append(f'"{names[ranked[0]]}"')
        for c in ranked[1:]:
            row += [str(c), f"{probs[i, c]:.6f}"]
        lines.write(",".join(row) + "\n")
    if args.out:
        write_text_atomic(args.out, lines.getvalue())
        print(f"{len(x)} predictions written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(lines.getvalue())
    return 0
