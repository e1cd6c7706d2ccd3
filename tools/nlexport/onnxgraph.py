"""A small ONNX graph builder shared by every architecture of the exporter.

Only `onnx` and `numpy` are needed. Each architecture module creates a `Graph`, adds nodes through
its methods (which name nodes and initializers uniquely), then calls `Graph.to_model(...)` with the
metadata contract of the element (see `metadata()`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17

# The metadata keys the element reads (docs/design.md, "Model metadata"), one a line in
# data/metadata_keys.txt: the element compiles the same file in (src/config/metadata.rs).
METADATA_KEYS = tuple(
    (Path(__file__).resolve().parents[2] / "data" / "metadata_keys.txt").read_text().split()
)


def _triple(values) -> str:
    return ",".join(repr(float(v)) for v in values)


def metadata(
    *,
    clip_length: int,
    frame_stride: int,
    scale_size: int,
    crop_size: int,
    mean,
    std,
    layout: str = "NCTHW",
    output_kind: str = "probabilities",
    labels: list[str] | None = None,
    name: str,
    weights: str,
    fps: float | None = None,
) -> dict[str, str]:
    """Return the metadata_props dict of the element's contract, validated.

    `fps`: the frame rate the network was trained at, where it is known (the element then samples
    clips by time, docs/design.md "Clip sampling"); left out otherwise.
    """
    if layout not in ("NCTHW", "NTHWC"):
        raise ValueError(f"layout must be NCTHW or NTHWC, not {layout!r}")
    if output_kind not in ("probabilities", "logits"):
        raise ValueError(f"output kind must be probabilities or logits, not {output_kind!r}")
    if len(mean) != 3 or len(std) != 3:
        raise ValueError("mean and std take three values (r,g,b)")
    props = {
        "clip.length": str(int(clip_length)),
        "clip.frame_stride": str(int(frame_stride)),
        "preprocess.scale_size": str(int(scale_size)),
        "preprocess.crop_size": str(int(crop_size)),
        "preprocess.mean": _triple(mean),
        "preprocess.std": _triple(std),
        "preprocess.layout": layout,
        "output.kind": output_kind,
        "model.name": name,
        "model.weights": weights,
    }
    if fps is not None:
        if not 0 < fps <= 1000:
            raise ValueError(f"fps must be above 0 and at most 1000, not {fps!r}")
        props["clip.fps"] = f"{fps:g}" if float(fps).is_integer() else repr(float(fps))
    if labels is not None:
        props["labels"] = "\n".join(labels)
    return props


def same_pads(in_sizes, kernel, strides):
    """TensorFlow/XLA "SAME" padding for the given input sizes: (pads_begin, pads_end).

    Each output dimension is ceil(in / stride); the total padding max((out - 1)·stride + k − in, 0)
    is split with the odd element at the end (TF puts the extra row/column after the data, unlike
    the symmetric pads of PyTorch/caffe2). Use with `Graph.conv_padded` / `Graph.maxpool_padded`.
    """
    begins, ends = [], []
    for n, k, s in zip(in_sizes, kernel, strides):
        out = -(-int(n) // int(s))
        total = max((out - 1) * int(s) + int(k) - int(n), 0)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return begins, ends


class Graph:
    """Accumulates nodes and initializers; names are made unique with a running counter."""

    def __init__(self, dtype=np.float32):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.dtype = np.dtype(dtype)
        self._count = 0

    # -- naming -----------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    # -- graph inputs/outputs ---------------------------------------------------------------
    def input(self, name: str, shape, elem_type=None) -> str:
        et = elem_type if elem_type is not None else helper.np_dtype_to_tensor_dtype(self.dtype)
        self.inputs.append(helper.make_tensor_value_info(name, et, list(shape)))
        return name

    def output(self, name: str, shape, elem_type=None) -> str:
        et = elem_type if elem_type is not None else helper.np_dtype_to_tensor_dtype(self.dtype)
        self.outputs.append(helper.make_tensor_value_info(name, et, list(shape)))
        return name

    # -- constants --------------------------------------------------------------------------
    def const(self, array, hint: str = "const", keep_dtype: bool = False) -> str:
        """Add an initializer. Float arrays are cast to the graph dtype unless keep_dtype."""
        arr = np.asarray(array)
        if arr.dtype.kind == "f" and not keep_dtype:
            arr = arr.astype(self.dtype)
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(arr, name))
        return name

    def ints(self, values, hint: str = "shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    # -- nodes ------------------------------------------------------------------------------
    def op(self, op_type: str, inputs, hint: str | None = None, n_out: int = 1, **attrs):
        """Add one node; returns its output name (or a list when n_out > 1)."""
        outs = [self.fresh(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(
            helper.make_node(op_type, list(inputs), outs, name=self.fresh("n_" + op_type), **attrs)
        )
        return outs[0] if n_out == 1 else outs

    def conv(self, x, w, b=None, *, strides, pads, hint="conv", group=1, pads_end=None):
        """N-d convolution; `pads` is per spatial dim (at both ends unless `pads_end` gives the
        far ends), `w` a numpy array."""
        w_name = self.const(w, hint + "_w")
        ins = [x, w_name]
        if b is not None:
            ins.append(self.const(b, hint + "_b"))
        pads = list(pads)
        return self.op(
            "Conv",
            ins,
            hint,
            kernel_shape=list(np.asarray(w).shape[2:]),
            strides=list(strides),
            pads=pads + (pads if pads_end is None else list(pads_end)),
            group=group,
        )

    def batchnorm(self, x, scale, bias, mean, var, eps, hint="bn"):
        """Test-mode batch normalisation (folded to Mul/Add by ONNX Runtime's optimiser)."""
        ins = [self.const(a, hint + suffix) for a, suffix in
               ((scale, "_s"), (bias, "_b"), (mean, "_rm"), (var, "_rv"))]
        return self.op("BatchNormalization", [x] + ins, hint, epsilon=float(eps))

    def relu(self, x):
        return self.op("Relu", [x], "relu")

    def maxpool(self, x, kernel, strides, pads, hint="pool"):
        pads = list(pads)
        return self.op(
            "MaxPool", [x], hint, kernel_shape=list(kernel), strides=list(strides), pads=pads + pads
        )

    def conv_padded(self, x, w, b=None, *, strides, pads_begin, pads_end, hint="conv", group=1):
        """Like `conv`, with explicit (possibly asymmetric) pads per spatial dim, e.g. `same_pads`."""
        w_name = self.const(w, hint + "_w")
        ins = [x, w_name]
        if b is not None:
            ins.append(self.const(b, hint + "_b"))
        return self.op(
            "Conv",
            ins,
            hint,
            kernel_shape=list(np.asarray(w).shape[2:]),
            strides=list(strides),
            pads=list(pads_begin) + list(pads_end),
            group=group,
        )

    def maxpool_padded(self, x, kernel, strides, pads_begin, pads_end, hint="pool"):
        """Like `maxpool`, with explicit (possibly asymmetric) pads; padding never wins the max."""
        return self.op(
            "MaxPool",
            [x],
            hint,
            kernel_shape=list(kernel),
            strides=list(strides),
            pads=list(pads_begin) + list(pads_end),
        )

    def avgpool(self, x, kernel, strides, pads_begin=None, pads_end=None, hint="avgpool",
                count_include_pad=False):
        """Average pooling; no pads ("VALID") unless given."""
        zeros = [0] * len(kernel)
        return self.op(
            "AveragePool",
            [x],
            hint,
            kernel_shape=list(kernel),
            strides=list(strides),
            pads=list(pads_begin or zeros) + list(pads_end or zeros),
            count_include_pad=int(bool(count_include_pad)),
        )

    # -- assembly ---------------------------------------------------------------------------
    def to_model(self, name: str, props: dict[str, str]) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(
            graph,
            producer_name="nonlocalclassify-export",
            opset_imports=[helper.make_opsetid("", OPSET)],
        )
        model.ir_version = 8
        helper.set_model_props(model, props)
        onnx.checker.check_model(model)
        return model


def save(model: onnx.ModelProto, path: str) -> None:
    """Save a model; graphs over 2 GB go to external data beside the file."""
    if model.ByteSize() > 1_900_000_000:
        onnx.save_model(model, path, save_as_external_data=True, location=path + ".data")
    else:
        onnx.save_model(model, path)


# The element and the tests read these names.
INPUT_NAME = "video"
OUTPUT_NAME = "scores"
TENSOR_FLOAT = TensorProto.FLOAT


def _normalise(g: Graph, x: str, mean, std, rank: int) -> str:
    """uint8 pixels (channel axis 1 of a rank-`rank` tensor) → (x − mean) / std in the graph dtype."""
    shape = (1, 3) + (1,) * (rank - 2)
    x = g.op("Cast", [x], "video_cast", to=helper.np_dtype_to_tensor_dtype(g.dtype))
    scale = 1.0 / np.asarray(std, dtype=np.float64)
    shift = -np.asarray(mean, dtype=np.float64) * scale
    x = g.op("Mul", [x, g.const(scale.reshape(shape), "video_scale")], "video_scaled")
    return g.op("Add", [x, g.const(shift.reshape(shape), "video_shift")], "video_norm")


def video_input(g: Graph, n, frames: int, crop: int, *, mean, std, uint8: bool = False) -> str:
    """The model's "video" input; returns the NCTHW tensor in the graph's dtype the network reads.

    Default: the element normalises, the input is [n, 3, frames, crop, crop] in the graph dtype.
    uint8: the input is the raw crops [n, frames, crop, crop, 3] (NTHWC uint8, a quarter of
    float32's bytes, copied row by row from the frames), and the graph itself transposes, casts
    and normalises, (x − mean) / std per channel, on the device the model runs on.
    """
    if not uint8:
        return g.input(INPUT_NAME, [n, 3, frames, crop, crop])
    x = g.input(INPUT_NAME, [n, frames, crop, crop, 3], elem_type=TensorProto.UINT8)
    x = g.op("Transpose", [x], "video_ncthw", perm=[0, 4, 1, 2, 3])
    return _normalise(g, x, mean, std, 5)


def video_frames(g: Graph, n, frames: int, crop: int, *, mean, std, uint8: bool = False) -> str:
    """The same graph input as `video_input`, returned as frames (n·frames, 3, crop, crop)."""
    if not uint8:
        x = g.input(INPUT_NAME, [n, 3, frames, crop, crop])
        x = g.op("Transpose", [x], "video_ntchw", perm=[0, 2, 1, 3, 4])
        return g.op("Reshape", [x, g.ints([-1, 3, crop, crop])], "video_frames")
    x = g.input(INPUT_NAME, [n, frames, crop, crop, 3], elem_type=TensorProto.UINT8)
    x = g.op("Reshape", [x, g.ints([-1, crop, crop, 3])], "video_frames")
    x = g.op("Transpose", [x], "video_nchw", perm=[0, 3, 1, 2])
    return _normalise(g, x, mean, std, 4)
