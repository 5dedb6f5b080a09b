"""Add metadata to a finished GGUF (e.g. the quality report) by rewriting it.

llama.cpp's quantizer takes no metadata of ours, so figures measured after
quantizing are written by streaming the file into a new one with the extra
keys; tensors are copied from the memory map one at a time.
"""

from __future__ import annotations

from pathlib import Path

import gguf

from quantize.files import atomic_output

V = gguf.GGUFValueType


def _add_value(writer: gguf.GGUFWriter, key: str, value) -> None:
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_uint64(key, value) if value >= 0 else writer.add_int64(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    else:
        writer.add_string(key, str(value))


def add_metadata(path: Path, extra: dict[str, str | int | float | bool]) -> None:
    """Rewrite `path` with the extra keys (replacing keys of the same name)."""
    reader = gguf.GGUFReader(path)
    arch = reader.fields["general.architecture"].contents()
    with atomic_output(path, ".meta") as partial:
        writer = gguf.GGUFWriter(partial, arch)
        for key, field in reader.fields.items():
            if key.startswith("GGUF.") or key == "general.architecture" or key in extra:
                continue
            sub_type = field.types[-1] if field.types[0] == V.ARRAY else None
            writer.add_key_value(key, field.contents(), field.types[0], sub_type)
        for key, value in extra.items():
            _add_value(writer, key, value)
        for tensor in reader.tensors:
            data = tensor.data
            writer.add_tensor_info(
                tensor.name, data.shape, data.dtype, data.nbytes, tensor.tensor_type
            )
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for tensor in reader.tensors:
            writer.write_tensor_data(tensor.data)
        writer.close()
