"""Triton Inference Server model repository entries for the element's ONNX models.

An entry is `REPO/NAME/config.pbtxt`, `REPO/NAME/labels.txt` and `REPO/NAME/1/model.onnx`:

- backend "onnxruntime" (default): for the NGC Triton container on a GPU host; Triton's own ONNX
  Runtime backend runs `model.onnx` (instances on the GPU).
- backend "python": `1/model.py` (tools/nlexport/triton_python_model.py) runs `model.onnx` with the
  `onnxruntime` package, on the CPU by default or on a card with the server's environment
  NONLOCAL_TRITON_PROVIDER=cuda (`tools/triton-serve --provider cuda`); for servers without the
  onnxruntime backend, such as the `tritonserver` bundled in the `nvidia-pytriton` wheel that the
  tests use. Its instances stay KIND_CPU either way: the python backend then hands the model
  host-memory tensors, and the model's own session picks the card.

Either way the input and output are the ONNX graph's (the batch dimension becomes
`max_batch_size` with a dynamic batcher when it is symbolic), and the model metadata of the
element's contract (docs/design.md, "Model metadata") is copied into the configuration's
`parameters`, where the element's remote backend reads it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx

HERE = Path(__file__).resolve().parent
PYTHON_MODEL = HERE / "triton_python_model.py"

# ONNX element types and Triton's names for them.
_TRITON_TYPES = {
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.DOUBLE: "TYPE_FP64",
}

BACKENDS = ("onnxruntime", "python")


class RepositoryError(ValueError):
    """A model that cannot be described to Triton (the message says why)."""


def _dims(value_info) -> list[int]:
    """A graph input's or output's dimensions, -1 for symbolic or unknown ones."""
    return [d.dim_value if d.HasField("dim_value") else -1
            for d in value_info.type.tensor_type.shape.dim]


def _type(value_info, path) -> str:
    elem = value_info.type.tensor_type.elem_type
    if elem not in _TRITON_TYPES:
        raise RepositoryError(f"{path}: '{value_info.name}' has ONNX element type {elem}, which "
                              "this tool does not map to a Triton type")
    return _TRITON_TYPES[elem]


def _quote(text: str) -> str:
    """A protobuf text-format string literal."""
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


def describe(onnx_path) -> dict:
    """The input, output and contract metadata of an ONNX model file."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1 or not graph.output:
        raise RepositoryError(f"{onnx_path}: the element's models have one input and a score "
                              f"output (found {len(inputs)} inputs, {len(graph.output)} outputs)")
    inp, out = inputs[0], graph.output[0]
    return {
        "input": (inp.name, _type(inp, onnx_path), _dims(inp)),
        "output": (out.name, _type(out, onnx_path), _dims(out)),
        "metadata": {p.key: p.value for p in model.metadata_props},
    }


def config_pbtxt(name: str, desc: dict, *, backend: str = "onnxruntime", max_batch_size: int = 8,
                 queue_delay_us: int = 2000, instances: int = 1, labels: bool = True) -> str:
    """The text of config.pbtxt for a model described by `describe`."""
    if backend not in BACKENDS:
        raise RepositoryError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    (in_name, in_type, in_dims), (out_name, out_type, out_dims) = desc["input"], desc["output"]
    # A symbolic batch dimension is Triton's batch dimension; a fixed one stays in the dims and
    # the server does not batch (the element then sends batches of exactly that size).
    batched = bool(in_dims) and in_dims[0] == -1 and bool(out_dims) and out_dims[0] == -1
    if batched:
        in_dims, out_dims = in_dims[1:], out_dims[1:]
    lines = [f"name: {_quote(name)}", f"backend: {_quote(backend)}",
             f"max_batch_size: {max_batch_size if batched else 0}"]
    lines += ["input [", "  {", f"    name: {_quote(in_name)}", f"    data_type: {in_type}",
              f"    dims: [ {', '.join(map(str, in_dims))} ]", "  }", "]"]
    lines += ["output [", "  {", f"    name: {_quote(out_name)}", f"    data_type: {out_type}",
              f"    dims: [ {', '.join(map(str, out_dims))} ]"]
    if labels:
        lines.append('    label_filename: "labels.txt"')
    lines += ["  }", "]"]
    if batched:
        sizes = [s for s in (1, 2, 4, 8, 16, 32, 64) if s <= max_batch_size]
        lines += ["dynamic_batching {",
                  f"  preferred_batch_size: [ {', '.join(map(str, sizes[-2:]))} ]",
                  f"  max_queue_delay_microseconds: {queue_delay_us}", "}"]
    kind = "KIND_GPU" if backend == "onnxruntime" else "KIND_CPU"
    lines += ["instance_group [", "  {", f"    count: {instances}", f"    kind: {kind}", "  }", "]"]
    for key, value in sorted(desc["metadata"].items()):
        lines += ["parameters {", f"  key: {_quote(key)}",
                  f"  value: {{ string_value: {_quote(value)} }}", "}"]
    return "\n".join(lines) + "\n"


def write_entry(repo, name: str, onnx_path, *, backend: str = "onnxruntime", max_batch_size: int = 8,
                queue_delay_us: int = 2000, instances: int = 1) -> Path:
    """Write the repository entry `repo/name` for `onnx_path`; returns its directory."""
    if not name or "/" in name or name in (".", ".."):
        raise RepositoryError(f"model name {name!r} is not a directory name")
    desc = describe(onnx_path)
    entry = Path(repo) / name
    version = entry / "1"
    version.mkdir(parents=True, exist_ok=True)
    labels = desc["metadata"].get("labels")
    (entry / "config.pbtxt").write_text(config_pbtxt(
        name, desc, backend=backend, max_batch_size=max_batch_size,
        queue_delay_us=queue_delay_us, instances=instances, labels=labels is not None))
    if labels is not None:
        (entry / "labels.txt").write_text(labels.rstrip("\n") + "\n")
    shutil.copyfile(onnx_path, version / "model.onnx")
    if backend == "python":
        shutil.copyfile(PYTHON_MODEL, version / "model.py")
    return entry
