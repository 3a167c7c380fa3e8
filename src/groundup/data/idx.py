"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``00 00 TT DD`` (``TT`` the element type, ``DD`` the
number of dimensions), then ``DD`` big-endian uint32 sizes, then the elements in C order,
big-endian. The reader checks every part of that and that the data length equals the
product of the sizes: a truncated or padded file is an error, never silently reshaped.
Files may be gzip-compressed (detected from their first two bytes, not their name).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from pathlib import Path

import numpy as np

from groundup._checks import check_array, type_error, value_error

_GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> big-endian numpy dtype
_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in _TYPES.items()}


_CHUNK = 1 << 20


def _too_large(name: str, max_bytes: int) -> ValueError:
    return value_error("read_idx", f"the uncompressed size of {name}",
                       f"at most {max_bytes:,} bytes (the largest this file can be)",
                       f"=more than {max_bytes:,} bytes", "the file is corrupt or a "
                       "decompression bomb; delete it and download it again.")


def read_limited(path: Path, max_bytes: int | None = None) -> bytes:
    """The uncompressed bytes of ``path`` (gzip or plain), read in chunks, stopping with a
    one-line error as soon as they pass ``max_bytes``: a small ``.gz`` that inflates to
    gigabytes costs at most ``max_bytes`` of memory."""
    name = str(path)
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == _GZIP_MAGIC
    if not gzipped:
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise _too_large(name, max_bytes)
        return path.read_bytes()
    parts: list[bytes] = []
    total = 0
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise _too_large(name, max_bytes)
                parts.append(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise value_error("read_idx", "the file", "a complete gzip stream", f"={name}",
                          f"the file is corrupt or truncated ({exc}); delete it and "
                          "download it again.") from exc
    return b"".join(parts)


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode uncompressed IDX bytes into a native-endian, writable ndarray.

    Args:
        data: the whole uncompressed file.
        name: shown in error messages (usually the file path).

    Returns:
        An array of shape ``(d_1, ..., d_DD)``, dtype uint8/int8/int16/int32/float32/float64.

    Raises:
        ValueError: wrong magic number, unknown type code, a header or data length that
            does not match the declared sizes.
    """
    owner = "read_idx"
    if len(data) < 4:
        raise value_error(owner, f"the header of {name}", "at least 4 bytes",
                          f"={len(data)} bytes", "the file is truncated.")
    zero1, zero2, code, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0 or code not in _TYPES or ndim == 0:
        raise value_error(owner, f"the magic number of {name}",
                          "00 00 TT DD with TT in {08,09,0B,0C,0D,0E} and DD >= 1",
                          "=" + data[:4].hex(" "), "this is not an IDX file.")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise value_error(owner, f"the header of {name}", f"{header} bytes for {ndim} dims",
                          f"={len(data)} bytes", "the file is truncated.")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _TYPES[code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no wrap-around
    actual = len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "longer than its header says"
        raise value_error(owner, f"the data length of {name}",
                          f"{expected} bytes for shape {shape}", f"={actual} bytes",
                          f"the file is {what}; delete it and download it again.")
    flat = np.frombuffer(data, dtype=dtype, offset=header)
    return flat.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def read_idx_bytes(path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """The uncompressed IDX bytes of ``path`` (gzip-compressed or not), at most
    ``max_bytes`` of them."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_idx: path must be an existing file; got path={str(path)!r}.")
    return read_limited(path, max_bytes)


def read_idx(path: str | os.PathLike, *, raw_sha256: str | None = None,
             max_bytes: int | None = None) -> np.ndarray:
    """Read an IDX file (``.gz`` or not) into an ndarray.

    Args:
        path: the file.
        raw_sha256: when given, the SHA-256 (hex) the *uncompressed* bytes must have.
        max_bytes: refuse a file whose uncompressed bytes pass this many, before reading
            the rest.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a malformed file, or a checksum mismatch naming the file.
    """
    data = read_idx_bytes(path, max_bytes)
    if raw_sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != raw_sha256:
            raise value_error("read_idx", f"the uncompressed SHA-256 of {path}", raw_sha256,
                              digest, "the file is corrupt or a different data set; delete "
                              "it and run `groundup data download`.")
    return parse_idx(data, str(path))


def to_idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as uncompressed IDX bytes (the inverse of ``parse_idx``)."""
    check_array("write_idx", "array", array, finite=False)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise type_error("write_idx", "array.dtype", "one of uint8, int8, int16, int32, "
                         "float32, float64", f"={array.dtype}")
    if array.ndim == 0 or array.ndim > 255:
        raise value_error("write_idx", "array.ndim", "in [1, 255]", f"={array.ndim}")
    code = _CODES[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=_TYPES[code]).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip-compressed when ``compress`` is True or, by
    default, when ``path`` ends with ``.gz``."""
    path = Path(path)
    data = to_idx_bytes(array)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def check_images_labels(images: np.ndarray, labels: np.ndarray, name: str = "") -> None:
    """Images must be (N, H, W), labels (N,), with the same N."""
    where = f" of {name}" if name else ""
    if images.ndim != 3:
        raise value_error("read_idx", f"the images{where}", "3-D (N, H, W)",
                          f"=shape {images.shape}")
    if labels.ndim != 1:
        raise value_error("read_idx", f"the labels{where}", "1-D (N,)", f"=shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise value_error("read_idx", f"the image and label counts{where}", "equal",
                          f"={images.shape[0]} images, {labels.shape[0]} labels",
                          "the two files belong to different splits or data sets.")
