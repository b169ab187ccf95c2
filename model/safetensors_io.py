"""Minimal safetensors reader/writer shared by the model scripts (numpy only).

The format (https://github.com/huggingface/safetensors): an 8-byte little-endian
header length N, N bytes of JSON mapping tensor names to
{"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data
section that follows the header) plus an optional "__metadata__" object of
string -> string, then the raw little-endian tensor bytes.

Usage:
    from safetensors_io import write_safetensors, read_safetensors
    write_safetensors("m.safetensors", {"dense/bias": np.zeros(10, np.float32)},
                      metadata={"sequence_length": "20"})
    tensors, metadata = read_safetensors("m.safetensors")
"""

import json
import struct

import numpy as np

_DTYPES = {
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def write_safetensors(path, tensors, metadata=None):
    """Writes `tensors` (name -> numpy array, written in the given order).

    Arrays are converted to little-endian; their dtype must be one of F32, F64,
    I32, I64. `metadata` values are converted to strings, as the format requires.
    """
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, array in tensors.items():
        array = np.asarray(array)
        dtype = array.dtype.newbyteorder("<")
        if dtype not in _NAMES:
            raise ValueError(f"tensor {name!r}: unsupported dtype {array.dtype}")
        data = np.ascontiguousarray(array, dtype=dtype).tobytes()
        header[name] = {
            "dtype": _NAMES[dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # keeps the data section 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for data in blobs:
            f.write(data)


def read_safetensors(path):
    """Returns (tensors: name -> numpy array, metadata: dict of str)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors header")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(raw[8 : 8 + n])
    metadata = header.pop("__metadata__", {}) or {}
    data = raw[8 + n :]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(info["shape"]).copy()
    return tensors, metadata
