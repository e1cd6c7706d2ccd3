"""Checkpoint readers for the Non-local ResNet exporter.

`load_checkpoint(path)` reads a trained Non-local ResNet from any of the formats it was published in
and returns ``(format_name, params)``: ``params`` maps FAIR caffe2 blob names (the canonical naming of
the exporter, see ``nonlocal_resnet.py``) to C-contiguous float32 numpy arrays. Only numpy is needed;
nothing from torch, paddle or caffe2 is imported, and no pickle in a checkpoint can run code: every
pickle goes through a restricted unpickler that only knows how to rebuild arrays and tensors.

The format is detected from the file's content, never from its name alone:

=========================  ===============================================================================
format name                what it is
=========================  ===============================================================================
``fair-caffe2-pkl``        facebookresearch/video-nonlocal-net: a Python-2 pickle (protocol 2) of
                           ``{'blobs': {name: ndarray}}`` (or the blob dict itself). ``model_iter``,
                           ``lr`` and ``*_momentum`` entries are skipped; a ``gpu_N/`` scope is removed.
``paddle-persistables``    Paddle 1.x ``save_persistables`` / ``save_inference_model`` directory with one
                           file per variable (the PaddleHub ``nonlocal_kinetics400`` layout), each file a
                           serialised LoDTensor (below). With a ``__model__`` program next to the files,
                           exactly the program's persistable variables are read.
``paddle-combined``        the same variables concatenated in one file (``__params__``, ``params`` or
                           ``*.pdiparams``) in sorted-name order, names taken from the ``__model__`` /
                           ``*.pdmodel`` program (a ProgramDesc protobuf) beside it.
``paddle-pdparams``        ``fluid.save`` / ``paddle.save`` output: a pickle of ``{paddle_name: ndarray}``.
``mmaction2-pth``          mmaction2 checkpoint written by ``torch.save`` (zip archive:
                           ``<root>/data.pkl`` + ``<root>/data/<key>`` storages + ``<root>/version``),
                           ``{'state_dict': ..., 'meta': ...}`` or a bare state dict.
``mmaction2-pth-legacy``   the same written by torch < 1.6 (a sequence of pickles followed by the raw
                           storages).
=========================  ===============================================================================

The family of a format is the text before its first ``-`` (``fair``, ``paddle``, ``mmaction2``).

Every failure raises `CheckpointError` (a `ValueError`) or one of its subclasses, with a message that
starts with the file's path and says what is wrong: not a checkpoint, truncated, unsupported dtype,
names that map to no FAIR parameter (all listed), a pickle asking for a global that is not allowed...

Paddle LoDTensor serialisation (``SerializeToStream`` in Paddle's ``lod_tensor.cc``), little-endian::

    uint32  version (0)
    uint64  lod_level, then per level: uint64 byte size + that many bytes of uint64 offsets
    uint32  tensor version (0)
    int32   size of the TensorDesc protobuf, then the TensorDesc:
                field 1 (varint) data_type: BOOL 0, INT16 1, INT32 2, INT64 3, FP16 4, FP32 5, FP64 6,
                                            UINT8 20, INT8 21, BF16 22
                field 2 (int64, repeated, packed or not) dims
    raw data, numel x element size bytes

Name mapping, FAIR (canonical) <- Paddle 1.x (PaddleCV/video ``nonlocal_model``, PaddleHub
``nonlocal_kinetics400``). ``S`` is the stage 2..5, ``i`` the 0-based block index; Paddle letters
the blocks ``a, b, c...`` (``chr(97 + i)``), except a 23-block stage (ResNet-101 ``res4``), which is
``a, b1, b2 ... b22``. ``X`` is ``1`` (projection shortcut), ``2a``, ``2b`` or ``2c``; ``N`` is the
non-local stage (3 or 4), ``j`` the index of the block it follows::

    FAIR                          Paddle
    conv1_w                       conv1_weights
    res_conv1_bn_s / _b           bn_conv1_scale / bn_conv1_offset
    res_conv1_bn_rm / _riv        bn_conv1_mean / bn_conv1_variance
    resS_i_branchX_w              resS{letter}_branchX_weights       e.g. res4f_branch2c_weights = res4_5_…
    resS_i_branchX_bn_s / _b      bnS{letter}_branchX_scale / _offset     (R101: res4b22_branch2a_weights
    resS_i_branchX_bn_rm / _riv   bnS{letter}_branchX_mean / _variance     = res4_22_branch2a_w)
    nonlocal_convN_j_theta_w / _b nonlocal_convN_j_theta_w / _b      (same for phi, g, out)
    nonlocal_convN_j_bn_s / _b    nonlocal_convN_j_bn_scale / _offset
    nonlocal_convN_j_bn_rm / _riv nonlocal_convN_j_bn_mean / _variance
    pred_w (400, 2048)            pred_w: (2048, 400) fc layout of the training program (transposed), or
                                  (400, 2048, 1, 1, 1) conv layout of the test program (reshaped)
    pred_b                        pred_b

Skipped Paddle variables: optimizer state (``*_velocity_0``, ``*_moment1_0``, ``*_moment2_0``,
``*_pow_acc_0``), ``learning_rate_*``, ``@LR_DECAY_COUNTER@``, ``feed``/``fetch``. Paddle's
``use_affine`` variant (``bn*_scale/_offset`` without mean/variance) maps to the same names (FAIR's
``AffineNd`` blobs are ``*_bn_s/_b`` too). Paddle's temporally grouped ``nonlocal_conv3_group_*``
blocks compute something else and are rejected as unknown names.

Name mapping, FAIR <- mmaction2 (``ResNet3d`` + mmcv ``NonLocal3d`` + ``I3DHead``). mmaction2's
``layerK`` is FAIR's ``res(K+1)``, block indices are the same (0-based); a ``module.`` prefix
(DataParallel) is removed; ``*.num_batches_tracked`` is skipped::

    FAIR                          mmaction2 (``backbone.`` prefix omitted below)
    conv1_w                       conv1.conv.weight
    res_conv1_bn_{s,b,rm,riv}     conv1.bn.{weight,bias,running_mean,running_var}
    resS_i_branch2a_w             layer{S-1}.i.conv1.conv.weight     (bn: layer{S-1}.i.conv1.bn.*)
    resS_i_branch2b_w             layer{S-1}.i.conv2.conv.weight     (bn: ….conv2.bn.*)
    resS_i_branch2c_w             layer{S-1}.i.conv3.conv.weight     (bn: ….conv3.bn.*)
    resS_i_branch1_w              layer{S-1}.i.downsample.conv.weight (bn: ….downsample.bn.*)
    nonlocal_convS_i_theta_{w,b}  layer{S-1}.i.non_local_block.theta.conv.{weight,bias}
    nonlocal_convS_i_phi_{w,b}    layer{S-1}.i.non_local_block.phi.0.conv.*  (phi.conv.* without
                                  sub-sampling; phi.1 / g.1 are the parameter-free max-pools)
    nonlocal_convS_i_g_{w,b}      layer{S-1}.i.non_local_block.g.0.conv.*    (or g.conv.*)
    nonlocal_convS_i_out_w        layer{S-1}.i.non_local_block.conv_out.conv.weight
    nonlocal_convS_i_out_b        conv_out.conv.bias when present, else zeros: mmcv's ConvModule drops
                                  the bias of a conv followed by a norm layer, so zeros are exact
    nonlocal_convS_i_bn_*         layer{S-1}.i.non_local_block.conv_out.bn.*
    pred_w (400, 2048), pred_b    cls_head.fc_cls.weight (400, 2048), cls_head.fc_cls.bias

mmaction2's network is not FAIR's, and the differences live in the graph, not in the weights, so
they cannot be mapped away. Read from mmaction2's ``i3d_r50`` base config and the
``…-nl-dot-product_8xb8-32x2x1-100e_kinetics400-rgb`` config (``ResNet3d``, mmcv ``NonLocal3d``):

* pool1: mmaction2 max-pools 1x3x3 with stride 2,2,2 and spatial padding 1 (112 -> 56); FAIR's I3D
  32x2 pools 2x3x3 with stride 2,2,2 and no padding (112 -> 55).
* non-local pairwise function: mmaction2 ``dot_product`` is theta^T.phi / N (N = number of key
  positions, no softmax, ``use_scale=False``); FAIR uses softmax(theta^T.phi / sqrt(C_inner)).
  (``embedded_gaussian`` with ``use_scale`` would match FAIR here; weights alone cannot tell.)
* non-local sub-sampling: mmaction2 max-pools 1x2x2 *after* the phi and g convolutions
  (``phi.1``/``g.1``); FAIR pools the block input *before* them. Max does not commute with the
  convolutions, so the results differ.
* input normalisation: ImageNet per-channel mean (123.675, 116.28, 103.53) / std (58.395, 57.12,
  57.375), against FAIR's 114.75 / 57.375 for every channel.
* head: global average pool then fc (one softmax per clip) against FAIR's fixed 4x7x7 average pool and
  per-position softmax; identical at a 224 crop, different at 256.
* (BN epsilon 1e-5 against 1.0000001e-5: negligible; the conv_out bias: handled exactly, above.)

What this module does about it: the names are mapped exactly (every weight has the same shape and
meaning as its FAIR counterpart), but `load_checkpoint` refuses an mmaction2 file with an
`ArchitectureMismatchError` listing the differences above, because a FAIR graph built from these
weights would compute wrong scores. A caller that builds mmaction2's variant of the network passes
``allow_architecture_mismatch=True`` and gets the weights; `MMACTION2_NETWORK` describes the variant
in machine-readable form, and ``load_checkpoint(..., info={})`` reports the non-local settings read
from the file. ``tools/export_model.py`` does this for ``--arch i3d-r50-nl``: it builds mmaction2's
network (``nonlocal_resnet.build(..., variant="mmaction2")``) from these weights.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
import struct
import zipfile

import numpy as np

__all__ = [
    "ArchitectureMismatchError",
    "CheckpointError",
    "FORMATS",
    "MMACTION2_NETWORK",
    "UnknownParameterError",
    "detect_format",
    "format_family",
    "is_fair_name",
    "load_checkpoint",
    "mmaction2_name_to_fair",
    "paddle_name_to_fair",
]

FORMATS = {
    "fair-caffe2-pkl": "FAIR video-nonlocal-net caffe2 pickle ({'blobs': {name: array}})",
    "paddle-persistables": "Paddle 1.x persistables directory, one LoDTensor file per variable",
    "paddle-combined": "Paddle combined params file (__params__ / *.pdiparams) + program",
    "paddle-pdparams": "Paddle pickle of {name: array} (fluid.save / paddle.save)",
    "mmaction2-pth": "mmaction2 checkpoint, torch zip serialisation",
    "mmaction2-pth-legacy": "mmaction2 checkpoint, legacy (torch < 1.6) serialisation",
}


def format_family(format_name: str) -> str:
    """``fair``, ``paddle`` or ``mmaction2``: the project a format name comes from."""
    return format_name.split("-", 1)[0]


# ---------------------------------------------------------------------------------------------
# Errors


class CheckpointError(ValueError):
    """A checkpoint could not be read; the message starts with the file's path."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UnknownParameterError(CheckpointError):
    """Some names in the checkpoint map to no FAIR parameter; ``names`` lists them."""

    def __init__(self, path, names, what: str):
        self.names = sorted(names)
        shown = ", ".join(self.names[:40])
        more = f" … and {len(self.names) - 40} more" if len(self.names) > 40 else ""
        super().__init__(
            path, f"{len(self.names)} {what} name(s) map to no Non-local ResNet parameter: {shown}{more}"
        )


class ArchitectureMismatchError(CheckpointError):
    """The weights were read, but the network they belong to differs from FAIR's in its graph."""

    def __init__(self, path, format_name: str, differences):
        self.format_name = format_name
        self.differences = list(differences)
        listed = "; ".join(f"({n}) {d}" for n, d in enumerate(self.differences, 1))
        super().__init__(
            path,
            f"{format_name} checkpoint of a network that differs from FAIR's Non-local ResNet in ways "
            f"its weights cannot express: {listed}. Exporting it as FAIR's network would compute "
            "wrong scores; it needs an exporter architecture that implements mmaction2's variant "
            "(load_checkpoint(..., allow_architecture_mismatch=True) returns the weights for that)",
        )


def _short(names, limit=12) -> str:
    names = sorted(names)
    extra = f" … ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + extra


# ---------------------------------------------------------------------------------------------
# FAIR names (the canonical naming)

_BN_FIELDS = ("s", "b", "rm", "riv")
_FAIR_NAME = re.compile(
    r"""^(?:
        conv1_w
      | res_conv1_bn_(?:s|b|rm|riv)
      | res[2-5]_\d+_branch(?:1|2[abc])_(?:w|bn_(?:s|b|rm|riv))
      | nonlocal_conv[2-5]_\d+_(?:(?:theta|phi|g|out)_[wb]|bn_(?:s|b|rm|riv))
      | pred_[wb]
    )$""",
    re.X,
)


def is_fair_name(name: str) -> bool:
    """True when ``name`` is a parameter blob name of FAIR's Non-local ResNet."""
    return bool(_FAIR_NAME.match(name))


def _fair_ignored(name: str) -> bool:
    """Training state FAIR saves beside the parameters."""
    return name in ("model_iter", "lr") or name.endswith("_momentum")


# ---------------------------------------------------------------------------------------------
# Paddle names

_PADDLE_BN = {"scale": "s", "offset": "b", "mean": "rm", "variance": "riv"}
_PADDLE_BLOCK_RE = re.compile(r"^res([2-5])([a-z])(\d*)_branch(1|2[abc])_weights$")
_PADDLE_BLOCK_BN_RE = re.compile(r"^bn([2-5])([a-z])(\d*)_branch(1|2[abc])_(scale|offset|mean|variance)$")
_PADDLE_STEM_BN_RE = re.compile(r"^bn_conv1_(scale|offset|mean|variance)$")
_PADDLE_NL_RE = re.compile(r"^(nonlocal_conv[2-5]_\d+)_(?:((?:theta|phi|g|out)_[wb])|bn_(scale|offset|mean|variance))$")
_PADDLE_IGNORED_RE = re.compile(
    r"^(?:feed|fetch|learning_rate(?:_\d+)?|@LR_DECAY_COUNTER@|StructuredToParameterName@@)$"
    r"|_(?:velocity|moment1|moment2|beta1_pow_acc|beta2_pow_acc|moment)_\d+$"
)

IGNORE = "<ignore>"  # returned by the *_name_to_fair functions for training state


def _paddle_block_index(letter: str, digits: str) -> int | None:
    """Block index from Paddle's lettering: ``a`` -> 0 … ``f`` -> 5, ``b7`` -> 7 (23-block stages)."""
    if digits:
        if letter != "b" or int(digits) < 1 or digits != str(int(digits)):
            return None
        return int(digits)
    return ord(letter) - ord("a")


def paddle_name_to_fair(name: str) -> str | None:
    """FAIR name of a Paddle 1.x Non-local variable, `IGNORE` for training state, None if unknown."""
    if _PADDLE_IGNORED_RE.search(name):
        return IGNORE
    if name == "conv1_weights":
        return "conv1_w"
    if name in ("pred_w", "pred_b"):
        return name
    m = _PADDLE_STEM_BN_RE.match(name)
    if m:
        return f"res_conv1_bn_{_PADDLE_BN[m.group(1)]}"
    m = _PADDLE_BLOCK_RE.match(name)
    if m:
        idx = _paddle_block_index(m.group(2), m.group(3))
        return None if idx is None else f"res{m.group(1)}_{idx}_branch{m.group(4)}_w"
    m = _PADDLE_BLOCK_BN_RE.match(name)
    if m:
        idx = _paddle_block_index(m.group(2), m.group(3))
        if idx is None:
            return None
        return f"res{m.group(1)}_{idx}_branch{m.group(4)}_bn_{_PADDLE_BN[m.group(5)]}"
    m = _PADDLE_NL_RE.match(name)
    if m:
        if m.group(2):
            return f"{m.group(1)}_{m.group(2)}"
        return f"{m.group(1)}_bn_{_PADDLE_BN[m.group(3)]}"
    return None


# ---------------------------------------------------------------------------------------------
# mmaction2 names

_MM_BN = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}
_MM_CONV = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c", "downsample": "branch1"}
_MM_STEM_RE = re.compile(r"^backbone\.conv1\.(?:conv\.(weight)|bn\.(weight|bias|running_mean|running_var))$")
_MM_BLOCK_RE = re.compile(
    r"^backbone\.layer([1-4])\.(\d+)\.(conv1|conv2|conv3|downsample)\."
    r"(?:conv\.(weight)|bn\.(weight|bias|running_mean|running_var))$"
)
_MM_NL_RE = re.compile(
    r"^backbone\.layer([1-4])\.(\d+)\.non_local_block\."
    r"(?:(theta|phi|g|conv_out)(?:\.0)?\.conv\.(weight|bias)"
    r"|conv_out\.bn\.(weight|bias|running_mean|running_var))$"
)
_MM_HEAD_RE = re.compile(r"^cls_head\.fc_cls\.(weight|bias)$")


def mmaction2_name_to_fair(name: str) -> str | None:
    """FAIR name of an mmaction2 I3D/ResNet3d state-dict key, `IGNORE` for BN counters, None if unknown."""
    if name.startswith("module."):
        name = name[len("module."):]
    if name.endswith(".num_batches_tracked"):
        return IGNORE
    m = _MM_STEM_RE.match(name)
    if m:
        return "conv1_w" if m.group(1) else f"res_conv1_bn_{_MM_BN[m.group(2)]}"
    m = _MM_BLOCK_RE.match(name)
    if m:
        stage, idx, branch = int(m.group(1)) + 1, int(m.group(2)), _MM_CONV[m.group(3)]
        if m.group(4):
            return f"res{stage}_{idx}_{branch}_w"
        return f"res{stage}_{idx}_{branch}_bn_{_MM_BN[m.group(5)]}"
    m = _MM_NL_RE.match(name)
    if m:
        prefix = f"nonlocal_conv{int(m.group(1)) + 1}_{int(m.group(2))}"
        if m.group(3):
            # theta has no max-pool, so mmcv never wraps it in a Sequential: theta.0 is not a key.
            if m.group(3) == "theta" and ".theta.0." in name:
                return None
            part = "out" if m.group(3) == "conv_out" else m.group(3)
            if part == "out" and ".conv_out.0." in name:
                return None
            return f"{prefix}_{part}_{'w' if m.group(4) == 'weight' else 'b'}"
        return f"{prefix}_bn_{_MM_BN[m.group(5)]}"
    m = _MM_HEAD_RE.match(name)
    if m:
        return "pred_w" if m.group(1) == "weight" else "pred_b"
    return None


# What mmaction2's I3D-NL network does differently from FAIR's (see the module docstring).
MMACTION2_NETWORK = {
    "pool1": {"kernel": (1, 3, 3), "stride": (2, 2, 2), "pads": (0, 1, 1)},
    "nonlocal": {"pairwise": "dot_product", "use_scale": False, "subsample": "max 1x2x2 after phi/g conv"},
    "preprocess": {"mean": (123.675, 116.28, 103.53), "std": (58.395, 57.12, 57.375)},
    "head": "global average pool, fc, softmax",
    "bn_epsilon": 1e-5,
}
_MM_MODE_DESCRIPTIONS = {
    "dot_product": "dot_product: theta.phi / N, no softmax",
    "embedded_gaussian": "embedded_gaussian: softmax(theta.phi{scale})",
}


def _mmaction2_differences(mode: str, use_scale: bool, sub_sample: bool) -> list[str]:
    """What an mmaction2 I3D-NL network computes differently from FAIR's, as sentences."""
    out = [
        "pool1 is a 1x3x3 max-pool with stride 2,2,2 and spatial padding 1 (FAIR: 2x3x3, stride 2,2,2, "
        "no padding)",
    ]
    if not (mode == "embedded_gaussian" and use_scale):
        desc = _MM_MODE_DESCRIPTIONS.get(mode, mode)
        desc = desc.replace("{scale}", " / sqrt(inner)" if use_scale else ", unscaled")
        out.append(f"non-local pairwise function {desc} (FAIR: softmax of theta.phi scaled by inner^-0.5)")
    if sub_sample:
        out.append("non-local sub-sampling max-pools 1x2x2 after the phi and g convolutions (FAIR: before them)")
    else:
        out.append("non-local phi and g see the full-resolution input (FAIR max-pools it 1x2x2 first)")
    out.append("input normalised with ImageNet per-channel mean 123.675,116.28,103.53 / std "
               "58.395,57.12,57.375 (FAIR: 114.75 / 57.375)")
    out.append("head averages globally before one fc+softmax (FAIR: fixed 4x7x7 pool, softmax per position)")
    return out


# ---------------------------------------------------------------------------------------------
# Restricted unpickling


def _numpy_multiarray():
    try:  # numpy >= 2
        from numpy._core import multiarray  # type: ignore[attr-defined]
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


_MULTIARRAY = _numpy_multiarray()


def _np_reconstruct(subtype, shape, dtype):
    # ndarray.__reduce__ passes ndarray itself; anything else could be a hostile subclass.
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"array reconstruction of {subtype!r} is not allowed")
    return _MULTIARRAY._reconstruct(np.ndarray, shape, dtype)


def _np_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("only numeric numpy scalars can be unpickled")
    return _MULTIARRAY.scalar(dtype, data) if data is not None else _MULTIARRAY.scalar(dtype)


def _np_frombuffer(buf, dtype, shape, order):
    # What numpy writes for arrays at pickle protocol 5.
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("only numeric numpy arrays can be unpickled")
    arr = np.frombuffer(bytes(buf), dtype=dtype)
    return arr.reshape(shape, order="F" if order == "F" else "C")


def _codecs_encode(text, encoding="utf-8", errors="strict"):
    # Python 3 writes `bytes` at protocol 2 as _codecs.encode(str, 'latin1'); allow only that.
    if encoding not in ("latin1", "latin-1", "iso-8859-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not allowed")
    return text.encode("latin1", errors)


_SAFE_CONTAINERS = (collections.OrderedDict, dict, list, set, frozenset)


def _copyreg_reconstructor(cls, base, state):
    # Protocol-0/1 style object rebuild; only harmless containers may come through it.
    if cls not in _SAFE_CONTAINERS or base not in (object,) + _SAFE_CONTAINERS:
        raise pickle.UnpicklingError(f"copy_reg reconstruction of {cls!r} is not allowed")
    return cls() if state is None else cls(state)


_NUMPY_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _codecs_encode,
    ("copy_reg", "_reconstructor"): _copyreg_reconstructor,
    ("copyreg", "_reconstructor"): _copyreg_reconstructor,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _NUMPY_GLOBALS[(_mod, "_reconstruct")] = _np_reconstruct
    _NUMPY_GLOBALS[(_mod, "scalar")] = _np_scalar
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _NUMPY_GLOBALS[(_mod, "_frombuffer")] = _np_frombuffer
for _mod in ("__builtin__", "builtins"):
    for _name, _obj in (("object", object), ("set", set), ("frozenset", frozenset),
                        ("bytearray", bytearray), ("complex", complex)):
        _NUMPY_GLOBALS[(_mod, _name)] = _obj


class _Opaque:
    """Stand-in for an object of a class this reader does not import (metadata of a torch checkpoint).

    It accepts whatever the pickle does to it (construction, state, items) and keeps it, inert.
    """

    qualname = "?"

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args = args
        obj.state = None
        obj.items = []
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        self.items.append((key, value))

    def append(self, value):
        self.items.append(value)

    def extend(self, values):
        self.items.extend(values)

    def __repr__(self):
        return f"<unloaded {self.qualname}>"


class _RestrictedUnpickler(pickle._Unpickler):  # pure Python: its memo is a dict, not an array
    """Unpickler that resolves only the globals in ``allowed``.

    With ``opaque_unknown``, any other global becomes an inert `_Opaque` class (used for the
    metadata of torch checkpoints, which may name classes of mmengine, torch optimisers…); without
    it, any other global is an error. Either way no code named by the pickle is ever imported or run.
    """

    def __init__(self, file, *, allowed, opaque_unknown=False, persistent_load=None):
        super().__init__(file, encoding="latin1")
        self._allowed = allowed
        self._opaque_unknown = opaque_unknown
        self._persistent = persistent_load

    def find_class(self, module, name):
        found = self._allowed.get((module, name))
        if found is not None:
            return found
        if self._opaque_unknown:
            return type(name, (_Opaque,), {"qualname": f"{module}.{name}"})
        raise pickle.UnpicklingError(
            f"the pickle references {module}.{name}, which is not an array-reconstruction global "
            "(refused: loading it could run arbitrary code)"
        )

    def persistent_load(self, pid):
        if self._persistent is None:
            raise pickle.UnpicklingError("the pickle has persistent ids but is not a torch checkpoint")
        return self._persistent(pid)


_PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
                  AttributeError, struct.error, UnicodeDecodeError, OverflowError, MemoryError)


def _unpickle(path, file, **kwargs):
    if not isinstance(file, io.BytesIO):
        # A length field of a damaged pickle makes the unpickler call read(n) with n in the
        # billions: a real file allocates n bytes first, a BytesIO returns what it has.
        start = file.tell()
        data = io.BytesIO(file.read())
        try:
            return _unpickle(path, data, **kwargs)
        finally:
            file.seek(start + data.tell())
    try:
        return _RestrictedUnpickler(file, **kwargs).load()
    except CheckpointError:
        raise
    except EOFError as exc:
        raise CheckpointError(path, f"truncated pickle ({exc or 'ran out of input'})") from None
    except _PICKLE_ERRORS as exc:
        raise CheckpointError(path, f"unreadable pickle: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Common post-processing


def _as_float32(path, name, value, source_name=None) -> np.ndarray:
    """The parameter as a C-contiguous float32 array; non-float data is an error."""
    label = source_name or name
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        value = np.asarray(value, dtype=np.float64)
    if not isinstance(value, np.ndarray):
        raise CheckpointError(path, f"parameter {label} is a {type(value).__name__}, not an array")
    if value.dtype.kind != "f":
        raise CheckpointError(path, f"parameter {label} has unsupported dtype {value.dtype} (want a float type)")
    # Always a fresh, writeable array: never a view into the file buffer.
    return np.array(value, dtype=np.float32, order="C", copy=True)


def _map_names(path, source: dict, mapper, what: str, *, transforms=None) -> dict:
    """Rename ``source`` to FAIR names with ``mapper``; unknown names and clashes are errors."""
    params: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    unknown = []
    for name, value in source.items():
        if not isinstance(name, str):
            unknown.append(repr(name))
            continue
        fair = mapper(name)
        if fair is IGNORE:
            continue
        if fair is None:
            unknown.append(name)
            continue
        if fair in params:
            raise CheckpointError(path, f"{origin[fair]} and {name} both map to FAIR parameter {fair}")
        if transforms and fair in transforms:
            value = transforms[fair](path, name, value)
        params[fair] = _as_float32(path, fair, value, source_name=name)
        origin[fair] = name
    if unknown:
        raise UnknownParameterError(path, unknown, what)
    if not params:
        raise CheckpointError(path, f"no {what} parameters found")
    return params


def _normalise_pred(params: dict) -> dict:
    """FAIR stores pred_w as (classes, 2048); a conv-layout (classes, 2048, 1, 1, 1) one is reshaped."""
    w = params.get("pred_w")
    if w is not None and w.ndim == 5 and w.shape[2:] == (1, 1, 1):
        params["pred_w"] = np.ascontiguousarray(w.reshape(w.shape[:2]))
    return params


# ---------------------------------------------------------------------------------------------
# FAIR caffe2 pickle


def _fair_from_dict(path, blobs: dict) -> dict:
    source = {}
    for name, value in blobs.items():
        if not isinstance(name, str):
            raise CheckpointError(path, f"blob name {name!r} is not a string")
        # Blobs saved from a multi-GPU workspace may keep their device scope.
        short = re.sub(r"^gpu_\d+/", "", name)
        if short in source:
            raise CheckpointError(path, f"blob {short} appears twice (with and without a gpu_N/ scope)")
        source[short] = value

    def mapper(name):
        if _fair_ignored(name):
            return IGNORE
        return name if is_fair_name(name) else None

    return _normalise_pred(_map_names(path, source, mapper, "FAIR caffe2 blob"))


# ---------------------------------------------------------------------------------------------
# Paddle: LoDTensor files, ProgramDesc, directory layouts

_PADDLE_DTYPES = {
    0: np.dtype(np.bool_), 1: np.dtype("<i2"), 2: np.dtype("<i4"), 3: np.dtype("<i8"),
    4: np.dtype("<f2"), 5: np.dtype("<f4"), 6: np.dtype("<f8"), 20: np.dtype(np.uint8),
    21: np.dtype(np.int8), 22: "bf16",
}
_PADDLE_DTYPE_NAMES = {7: "LOD_TENSOR", 8: "SELECTED_ROWS", 9: "FEED_MINIBATCH", 10: "FETCH_LIST",
                       19: "SIZE_T", 23: "COMPLEX64", 24: "COMPLEX128"}
_LOD_TENSOR = 7


class _ProtoError(Exception):
    pass


def _varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _ProtoError("varint runs past the end")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _ProtoError("varint longer than 10 bytes")


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _proto_fields(buf):
    """Yield (field number, wire type, value) of a serialised protobuf message."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise _ProtoError("fixed64 runs past the end")
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise _ProtoError("length-delimited field runs past the end")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            if pos + 4 > end:
                raise _ProtoError("fixed32 runs past the end")
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise _ProtoError(f"unsupported wire type {wire}")
        if field == 0:
            raise _ProtoError("field number 0")
        yield field, wire, value


def _tensor_desc(buf) -> tuple[int, list[int]]:
    """(data_type, dims) of a Paddle VarType.TensorDesc."""
    dtype, dims = None, []
    for field, wire, value in _proto_fields(buf):
        if field == 1 and wire == 0:
            dtype = value
        elif field == 2 and wire == 0:  # proto2 default: one varint per element
            dims.append(_signed64(value))
        elif field == 2 and wire == 2:  # packed
            pos = 0
            while pos < len(value):
                v, pos = _varint(value, pos)
                dims.append(_signed64(v))
    if dtype is None:
        raise _ProtoError("TensorDesc without data_type")
    return dtype, dims


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _read_lod_tensor(path, buf, pos: int, what: str):
    """Parse one serialised LoDTensor at ``buf[pos:]``; return (array, position after it)."""

    def need(n, field):
        if pos + n > len(buf):
            raise CheckpointError(path, f"{what}: truncated in the {field} (needs {pos + n} bytes, "
                                        f"has {len(buf)})")

    need(4, "LoDTensor version")
    (version,) = struct.unpack_from("<I", buf, pos)
    if version != 0:
        raise CheckpointError(path, f"{what}: not a Paddle LoDTensor (version field {version}, expected 0)")
    pos += 4
    need(8, "LoD level")
    (lod_level,) = struct.unpack_from("<Q", buf, pos)
    pos += 8
    if lod_level > 32:
        raise CheckpointError(path, f"{what}: not a Paddle LoDTensor (LoD level {lod_level})")
    for _ in range(lod_level):
        need(8, "LoD size")
        (size,) = struct.unpack_from("<Q", buf, pos)
        pos += 8
        need(size, "LoD data")
        pos += size
    need(4, "tensor version")
    (tversion,) = struct.unpack_from("<I", buf, pos)
    if tversion != 0:
        raise CheckpointError(path, f"{what}: unsupported tensor version {tversion}")
    pos += 4
    need(4, "TensorDesc size")
    (desc_size,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    if not 0 < desc_size < 1 << 16:
        raise CheckpointError(path, f"{what}: not a Paddle LoDTensor (TensorDesc size {desc_size})")
    need(desc_size, "TensorDesc")
    try:
        dtype_code, dims = _tensor_desc(bytes(buf[pos:pos + desc_size]))
    except _ProtoError as exc:
        raise CheckpointError(path, f"{what}: corrupt TensorDesc ({exc})") from None
    pos += desc_size
    dtype = _PADDLE_DTYPES.get(dtype_code)
    if dtype is None:
        name = _PADDLE_DTYPE_NAMES.get(dtype_code, f"type code {dtype_code}")
        raise CheckpointError(path, f"{what}: unsupported dtype {name}")
    if any(d < 0 for d in dims):
        raise CheckpointError(path, f"{what}: negative dimension in {dims}")
    numel = int(np.prod(dims, dtype=np.int64)) if dims else 1
    itemsize = 2 if dtype == "bf16" else dtype.itemsize
    need(numel * itemsize, f"data of shape {tuple(dims)}")
    if dtype == "bf16":
        raw = np.frombuffer(buf, dtype="<u2", count=numel, offset=pos)
        arr = _bf16_to_f32(raw).reshape(dims)
    else:
        arr = np.frombuffer(buf, dtype=dtype, count=numel, offset=pos).reshape(dims).copy()
    return arr, pos + numel * itemsize


def _looks_like_lod_tensor(head: bytes) -> bool:
    """Cheap test on a file's first bytes: version 0, small LoD level, tensor version 0."""
    if len(head) < 20:
        return False
    version, lod_level = struct.unpack_from("<IQ", head, 0)
    if version != 0 or lod_level > 32:
        return False
    if lod_level == 0:
        tversion, desc = struct.unpack_from("<Ii", head, 12)
        return tversion == 0 and 0 < desc < 1 << 16
    return True


def _parse_program(path, buf) -> list[tuple[str, int, list[int]]]:
    """Persistable LoD-tensor variables of a Paddle ProgramDesc: [(name, dtype, dims)]."""
    variables = {}
    try:
        for field, wire, block in _proto_fields(buf):
            if field != 1 or wire != 2:  # ProgramDesc.blocks
                continue
            for bfield, bwire, var in _proto_fields(block):
                if bfield != 3 or bwire != 2:  # BlockDesc.vars
                    continue
                name, vtype, persistable = None, None, False
                for vfield, vwire, value in _proto_fields(var):
                    if vfield == 1 and vwire == 2:
                        name = bytes(value).decode("utf-8")
                    elif vfield == 2 and vwire == 2:
                        vtype = value
                    elif vfield == 3 and vwire == 0:
                        persistable = bool(value)
                if name is None or vtype is None or not persistable:
                    continue
                kind, dtype, dims = None, None, []
                for tfield, twire, value in _proto_fields(vtype):
                    if tfield == 1 and twire == 0:
                        kind = value
                    elif tfield == 3 and twire == 2:  # VarType.lod_tensor: LoDTensorDesc
                        for lfield, lwire, tdesc in _proto_fields(value):
                            if lfield == 1 and lwire == 2:
                                dtype, dims = _tensor_desc(tdesc)
                if kind == _LOD_TENSOR:
                    variables[name] = (name, dtype, dims)
    except (_ProtoError, UnicodeDecodeError) as exc:
        raise CheckpointError(path, f"not a Paddle program (ProgramDesc): {exc}") from None
    if not variables:
        raise CheckpointError(path, "Paddle program declares no persistable tensors")
    return list(variables.values())


_PROGRAM_NAMES = ("__model__", "model")
_COMBINED_NAMES = ("__params__", "params", "__variables__")
_NON_PARAM_SUFFIXES = (".py", ".pyc", ".txt", ".md", ".json", ".yml", ".yaml", ".info", ".pdmodel",
                       ".pdiparams", ".pdopt", ".pdparams", ".log", ".sh", ".tar", ".gz", ".zip")


def _find_program(directory: str) -> str | None:
    for name in _PROGRAM_NAMES:
        p = os.path.join(directory, name)
        if os.path.isfile(p) and not _file_starts_with_tensor(p):
            return p
    models = sorted(f for f in os.listdir(directory) if f.endswith(".pdmodel"))
    return os.path.join(directory, models[0]) if len(models) == 1 else None


def _find_combined(directory: str, program: str | None) -> str | None:
    for name in _COMBINED_NAMES:
        p = os.path.join(directory, name)
        if os.path.isfile(p):
            return p
    if program and program.endswith(".pdmodel"):
        p = program[: -len(".pdmodel")] + ".pdiparams"
        if os.path.isfile(p):
            return p
    found = sorted(f for f in os.listdir(directory) if f.endswith(".pdiparams"))
    return os.path.join(directory, found[0]) if len(found) == 1 else None


def _file_starts_with_tensor(path) -> bool:
    try:
        with open(path, "rb") as f:
            return _looks_like_lod_tensor(f.read(32))
    except OSError:
        return False


def _check_declared(path, name, arr, dims):
    if dims and (len(dims) != arr.ndim or any(d >= 0 and d != s for d, s in zip(dims, arr.shape))):
        raise CheckpointError(path, f"variable {name} has shape {arr.shape} but the program declares "
                                    f"{tuple(dims)}")


def _read_file(path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CheckpointError(path, f"cannot read: {exc.strerror or exc}") from None


def _paddle_combined(path, params_file, program_file) -> dict:
    """Variables of a combined params file, named from the program beside it (sorted-name order)."""
    variables = sorted(_parse_program(program_file, _read_file(program_file)))
    buf = memoryview(_read_file(params_file))
    arrays, pos = {}, 0
    for name, _dtype, dims in variables:
        if pos >= len(buf):
            raise CheckpointError(params_file, f"truncated: ends after {len(arrays)} of {len(variables)} "
                                               f"variables declared by {os.path.basename(program_file)} "
                                               f"(next: {name})")
        arr, pos = _read_lod_tensor(params_file, buf, pos, f"variable {name}")
        _check_declared(params_file, name, arr, dims)
        arrays[name] = arr
    if pos != len(buf):
        raise CheckpointError(params_file, f"{len(buf) - pos} bytes left after the {len(variables)} variables "
                                           f"of {os.path.basename(program_file)}: file and program do not match")
    return arrays


def _paddle_directory(path) -> tuple[str, dict]:
    """Read a Paddle model directory; returns (format name, {paddle name: array})."""
    program = _find_program(path)
    combined = _find_combined(path, program)
    if combined is not None:
        if program is None:
            raise CheckpointError(path, f"{os.path.basename(combined)} holds variables without names; "
                                        "its program (__model__ or *.pdmodel) is missing")
        return "paddle-combined", _paddle_combined(path, combined, program)
    if program is not None:
        variables = _parse_program(program, _read_file(program))
        missing = [n for n, _, _ in variables if not os.path.isfile(os.path.join(path, n))]
        if missing:
            raise CheckpointError(path, f"{len(missing)} variable file(s) declared by "
                                        f"{os.path.basename(program)} are missing: {_short(missing)}")
        arrays = {}
        for name, _dtype, dims in variables:
            file = os.path.join(path, name)
            arr, end = _read_lod_tensor(file, memoryview(_read_file(file)), 0, f"variable {name}")
            _check_declared(file, name, arr, dims)
            arrays[name] = arr
        return "paddle-persistables", arrays
    # No program: every plain file is a variable named after the file.
    candidates = sorted(
        f for f in os.listdir(path)
        if os.path.isfile(os.path.join(path, f)) and not f.startswith(".")
        and not f.endswith(_NON_PARAM_SUFFIXES)
    )
    if not candidates:
        subdirs = [d for d in sorted(os.listdir(path))
                   if os.path.isdir(os.path.join(path, d)) and _find_program(os.path.join(path, d))]
        if len(subdirs) == 1:  # e.g. a PaddleHub module directory holding its model directory
            return _paddle_directory(os.path.join(path, subdirs[0]))
        raise CheckpointError(path, "directory holds no Paddle variable files and no __model__ program")
    arrays = {}
    for name in candidates:
        file = os.path.join(path, name)
        buf = memoryview(_read_file(file))
        arr, end = _read_lod_tensor(file, buf, 0, "Paddle variable file")
        if end != len(buf):
            raise CheckpointError(file, f"{len(buf) - end} unexpected bytes after the tensor")
        arrays[name] = arr
    return "paddle-persistables", arrays


def _paddle_params(path, arrays: dict) -> dict:
    # The structured names of a paddle.save'd dygraph state dict come with a map to the
    # parameter names (ParamAttr names such as conv1_weights) under this key.
    renames = arrays.pop("StructuredToParameterName@@", None)
    if isinstance(renames, dict):
        arrays = {(renames[k] if isinstance(renames.get(k), str) else k): v for k, v in arrays.items()}
    params = _map_names(path, arrays, paddle_name_to_fair, "Paddle")
    w, b = params.get("pred_w"), params.get("pred_b")
    if w is not None and w.ndim == 2:
        # The training program's fc stores (2048, classes); FAIR wants (classes, 2048). Keep a
        # matrix that is already (classes, 2048) by pred_b's length when that tells them apart.
        already = b is not None and b.ndim == 1 and w.shape[0] == b.shape[0] != w.shape[1]
        if not already:
            params["pred_w"] = np.ascontiguousarray(w.T)
    return _normalise_pred(params)


# ---------------------------------------------------------------------------------------------
# torch serialisation (mmaction2)

_TORCH_STORAGES = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": "bf16", "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"), "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype(np.bool_),
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _StorageType:
    """What ``torch.FloatStorage`` & co. unpickle to: the element type of a storage."""

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype
        self.itemsize = 2 if dtype == "bf16" else dtype.itemsize

    def __repr__(self):
        return f"torch.{self.name}"


class _Storage:
    """A storage read from the checkpoint: a flat numpy array of its elements."""

    def __init__(self, flat: np.ndarray, type_name: str):
        self.flat, self.type_name = flat, type_name


def _storage_array(path, stype, raw, numel, key, big_endian=False) -> np.ndarray:
    if not isinstance(stype, _StorageType):
        raise CheckpointError(path, f"storage {key} has unsupported storage type {stype!r}")
    if numel < 0 or len(raw) < numel * stype.itemsize:
        raise CheckpointError(path, f"storage {key} is truncated: {len(raw)} bytes for {numel} "
                                    f"{stype.name} elements")
    if stype.dtype == "bf16":
        return _bf16_to_f32(np.frombuffer(raw, dtype=">u2" if big_endian else "<u2", count=numel))
    dtype = stype.dtype.newbyteorder(">") if big_endian and stype.itemsize > 1 else stype.dtype
    return np.frombuffer(raw, dtype=dtype, count=numel)


def _rebuild_tensor(path):
    """``torch._utils._rebuild_tensor_v2`` for numpy: view a storage with offset, size and stride."""

    def rebuild(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                metadata=None):
        if not isinstance(storage, _Storage):
            raise pickle.UnpicklingError(f"tensor storage is {storage!r}, not a storage")
        size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
        offset = int(storage_offset)
        if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
            raise pickle.UnpicklingError(f"bad tensor geometry size={size} stride={stride} offset={offset}")
        flat = storage.flat
        if 0 in size:
            return np.zeros(size, dtype=flat.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size:
            raise pickle.UnpicklingError(
                f"tensor of size {size}, stride {stride}, offset {offset} overruns its {storage.type_name} "
                f"of {flat.size} elements")
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=tuple(s * flat.itemsize for s in stride), writeable=False)
        return np.ascontiguousarray(view)

    return rebuild


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *extra):
    return data  # an nn.Parameter is its tensor


def _torch_globals(path) -> dict:
    allowed = dict(_NUMPY_GLOBALS)
    allowed[("torch._utils", "_rebuild_tensor_v2")] = _rebuild_tensor(path)
    allowed[("torch._utils", "_rebuild_parameter")] = _rebuild_parameter
    for name, dtype in _TORCH_STORAGES.items():
        allowed[("torch", name)] = _StorageType(name, dtype)
    return allowed


def _torch_zip(path) -> dict:
    """Unpickle the object of a torch zip checkpoint, tensors as numpy arrays."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise CheckpointError(path, f"corrupt or truncated zip archive ({exc})") from None
    with zf:
        names = zf.namelist()
        roots = [n[: -len("/data.pkl")] for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(roots) != 1:
            raise CheckpointError(path, "zip archive without exactly one <root>/data.pkl: not a torch checkpoint")
        root = roots[0]
        present = set(names)

        def read(name):
            try:
                return zf.read(name)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
                raise CheckpointError(path, f"corrupt or truncated zip member {name} ({exc})") from None

        big_endian = False
        if f"{root}/byteorder" in present:
            order = read(f"{root}/byteorder").decode("ascii", "replace").strip()
            if order not in ("little", "big"):
                raise CheckpointError(path, f"unknown byte order {order!r}")
            big_endian = order == "big"

        storages: dict[str, _Storage] = {}

        def persistent_load(pid):
            if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
                raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
            _, stype, key, _location, numel = pid[:5]
            key = str(key)
            if key not in storages:
                member = f"{root}/data/{key}"
                if member not in present:
                    raise CheckpointError(path, f"storage {member} is missing from the archive")
                flat = _storage_array(path, stype, read(member), int(numel), key, big_endian)
                storages[key] = _Storage(flat, stype.name)
            return storages[key]

        data = read(f"{root}/data.pkl")
        return _unpickle(path, io.BytesIO(data), allowed=_torch_globals(path), opaque_unknown=True,
                         persistent_load=persistent_load)


def _torch_legacy(path, f) -> object:
    """Unpickle a torch < 1.6 checkpoint: magic, version, sys info, object, storage keys, storages."""
    plain = dict(allowed=_NUMPY_GLOBALS)
    _unpickle(path, f, **plain)  # magic number (already checked by the caller)
    version = _unpickle(path, f, **plain)
    if version != 1001:
        raise CheckpointError(path, f"unsupported legacy torch protocol version {version!r}")
    sys_info = _unpickle(path, f, **plain)
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True

    pending: dict[str, tuple] = {}
    views = []  # tensors are rebuilt after the storages have been read

    class _Pending:
        def __init__(self, key, offset=0, numel=None):
            self.key, self.offset, self.numel = key, offset, numel

    def persistent_load(pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, stype, key, _location, numel = pid[:5]
        view = pid[5] if len(pid) > 5 else None
        if not isinstance(stype, _StorageType):
            raise CheckpointError(path, f"storage {key} has unsupported storage type {stype!r}")
        pending.setdefault(str(key), (stype, int(numel)))
        if view is not None:
            _view_key, view_offset, view_size = view
            return _Pending(str(key), int(view_offset), int(view_size))
        return _Pending(str(key))

    def rebuild(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                metadata=None):
        holder = _Opaque()
        views.append((holder, storage, storage_offset, size, stride))
        return holder

    allowed = _torch_globals(path)
    allowed[("torch._utils", "_rebuild_tensor_v2")] = rebuild
    obj = _unpickle(path, f, allowed=allowed, opaque_unknown=True, persistent_load=persistent_load)
    keys = _unpickle(path, f, **plain)
    if not isinstance(keys, list):
        raise CheckpointError(path, "legacy torch checkpoint without its storage key list")
    storages = {}
    for key in keys:
        key = str(key)
        if key not in pending:
            raise CheckpointError(path, f"storage {key} is listed but never used")
        stype, numel = pending[key]
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(path, f"truncated before storage {key}")
        (stored,) = struct.unpack("<q" if little else ">q", head)
        if stored != numel:
            raise CheckpointError(path, f"storage {key} holds {stored} elements, the pickle says {numel}")
        raw = f.read(numel * stype.itemsize)
        storages[key] = _Storage(_storage_array(path, stype, raw, numel, key, not little), stype.name)
    rebuild_v2 = _rebuild_tensor(path)
    arrays = {}
    for holder, storage, offset, size, stride in views:
        if storage.key not in storages:
            raise CheckpointError(path, f"storage {storage.key} is used but missing")
        base = storages[storage.key]
        if storage.offset or storage.numel is not None:
            stop = storage.offset + (storage.numel if storage.numel is not None else base.flat.size)
            base = _Storage(base.flat[storage.offset:stop], base.type_name)
        try:
            arrays[id(holder)] = rebuild_v2(base, offset, size, stride)
        except _PICKLE_ERRORS as exc:  # a damaged file can give any value for size or stride
            raise CheckpointError(path, f"bad tensor {storage.key}: {exc}") from None
    return _replace_holders(obj, arrays)


def _replace_holders(obj, arrays):
    """Swap the placeholders of legacy tensors for their arrays inside dicts/lists/tuples."""
    if isinstance(obj, _Opaque) and id(obj) in arrays:
        return arrays[id(obj)]
    if isinstance(obj, dict):
        for k in list(obj.keys()):
            obj[k] = _replace_holders(obj[k], arrays)
        return obj
    if isinstance(obj, list):
        return [_replace_holders(v, arrays) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_replace_holders(v, arrays) for v in obj)
    return obj


def _find_text(obj, depth=0):
    """Every string inside the (possibly nested) checkpoint metadata, for config sniffing."""
    if depth > 6:
        return
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _find_text(v, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _find_text(v, depth + 1)


def _mmaction2_state_dict(path, ckpt) -> tuple[dict, object]:
    """(state dict, meta) of an unpickled mmaction2 checkpoint."""
    if not isinstance(ckpt, dict):
        raise CheckpointError(path, f"torch checkpoint holds a {type(ckpt).__name__}, not a state dict")
    for key in ("state_dict", "model"):
        if isinstance(ckpt.get(key), dict):
            return ckpt[key], ckpt.get("meta")
    if any(isinstance(v, np.ndarray) for v in ckpt.values()):
        return ckpt, None
    raise CheckpointError(path, "torch checkpoint without a state_dict")


def _mmaction2_params(path, state: dict, meta, info: dict | None = None) -> tuple[dict, list[str]]:
    """Map an mmaction2 state dict; returns (params, the network's differences from FAIR's).

    ``info``, when given, receives the non-local settings found: ``mode``, ``use_scale``,
    ``sub_sample`` and ``differences``."""
    for name, value in state.items():
        if isinstance(value, _Opaque):
            raise CheckpointError(path, f"state-dict entry {name} is an unsupported object {value!r}")
    names = [k for k in state if isinstance(k, str)]
    # NonLocal3d modes without theta/phi convolutions, or with a concat projection, compute a
    # different function and have no FAIR counterpart for some of their weights.
    if any(".non_local_block.concat_project." in n for n in names):
        raise CheckpointError(path, "mmaction2 non-local blocks use mode 'concatenation', which FAIR's "
                                    "network does not have (concat_project weights)")
    blocks_g = {n.split(".non_local_block.")[0] for n in names if ".non_local_block.g." in n}
    blocks_theta = {n.split(".non_local_block.")[0] for n in names if ".non_local_block.theta." in n}
    if blocks_g - blocks_theta:
        raise CheckpointError(path, "mmaction2 non-local blocks use mode 'gaussian' (no theta/phi "
                                    f"convolutions): {_short(blocks_g - blocks_theta)}")
    params = _map_names(path, {k: v for k, v in state.items()}, mmaction2_name_to_fair, "mmaction2")
    # conv_out of a block with a norm layer has no bias in mmcv: the exact FAIR equivalent is zero.
    for name in list(params):
        if name.endswith("_out_w"):
            bias = name[:-1] + "b"
            params.setdefault(bias, np.zeros(params[name].shape[0], dtype=np.float32))
    if params.get("pred_w") is not None and params["pred_w"].ndim != 2:
        raise CheckpointError(path, f"cls_head.fc_cls.weight has shape {params['pred_w'].shape}, "
                                    "expected (classes, channels)")

    # The pairwise function is not visible in the weights (dot_product and embedded_gaussian have
    # the same ones): take it from the config text mmengine/mmcv keep in the metadata, else assume
    # the published I3D-NL config's dot_product. Sub-sampling shows in the names (phi.0 vs phi).
    mode, use_scale = "dot_product", False
    for text in _find_text(meta):
        cfg = _call_arguments(text, "non_local_cfg")
        if cfg is not None:
            m = re.search(r"mode\s*=\s*['\"](\w+)['\"]", cfg)
            mode = m.group(1) if m else "embedded_gaussian"  # NonLocal3d's default mode
            m = re.search(r"use_scale\s*=\s*(True|False)", cfg)
            use_scale = m.group(1) == "True" if m else mode == "embedded_gaussian"
            break
    sub_sample = any(".non_local_block.phi.0." in n for n in names) or not any(
        ".non_local_block.phi." in n for n in names)
    differences = _mmaction2_differences(mode, use_scale, sub_sample)
    if info is not None:
        info.update(mode=mode, use_scale=use_scale, sub_sample=sub_sample,
                    differences=list(differences))
    return params, differences


def _call_arguments(text: str, keyword: str) -> str | None:
    """The text between the parentheses of ``keyword=dict(...)`` in a config dump, or None."""
    m = re.search(keyword + r"\s*=\s*dict\(", text)
    if not m:
        return None
    depth, start = 1, m.end()
    for i in range(start, min(len(text), start + 4000)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    return None


# ---------------------------------------------------------------------------------------------
# Entry points


def _sniff(path) -> str:
    """'dir', 'zip', 'pickle', 'lod', or 'unknown' from the path's type and first bytes."""
    if os.path.isdir(path):
        return "dir"
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError as exc:
        raise CheckpointError(path, f"cannot read: {exc.strerror or exc}") from None
    if not head:
        raise CheckpointError(path, "empty file: not a checkpoint")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    if _looks_like_lod_tensor(head):
        return "lod"
    if head[:1] in (b"(", b"}", b"]", b"c"):  # protocol 0/1 pickles
        return "pickle"
    return "unknown"


def _load_pickle(path):
    """(format name, raw object) of a pickle file; a legacy torch file is read whole."""
    if _starts_with_torch_magic(path):
        with open(path, "rb") as f:
            return "mmaction2-pth-legacy", _torch_legacy(path, f)
    with open(path, "rb") as f:
        obj = _unpickle(path, f, allowed=_NUMPY_GLOBALS)
        trailing = f.read(1)
    if trailing:
        raise CheckpointError(path, "data after the end of the pickle: not a single-pickle checkpoint")
    return "pickle", obj


def _starts_with_torch_magic(path) -> bool:
    with open(path, "rb") as f:
        head = f.read(16)
    # Protocol 2 LONG1 of the magic number: 0x80 0x02 0x8a 0x0a + 10 bytes little-endian.
    return head[:4] == b"\x80\x02\x8a\x0a" and int.from_bytes(head[4:14], "little") == _LEGACY_MAGIC


def _classify_pickle(path, obj) -> tuple[str, dict]:
    """Decide between a FAIR blob pickle and a Paddle .pdparams pickle; returns (format, params)."""
    if not isinstance(obj, dict):
        raise CheckpointError(path, f"pickle holds a {type(obj).__name__}, not a checkpoint dictionary")
    if "blobs" in obj:
        if not isinstance(obj["blobs"], dict):
            raise CheckpointError(path, "'blobs' entry is not a dictionary")
        return "fair-caffe2-pkl", _fair_from_dict(path, obj["blobs"])
    if "state_dict" in obj or any(isinstance(k, str) and k.startswith(("backbone.", "cls_head."))
                                  for k in obj):
        raise CheckpointError(path, "pickle looks like a torch state dict but is not torch serialisation "
                                    "(save it with torch.save)")
    names = [k for k in obj if isinstance(k, str)]
    fair_hits = sum(is_fair_name(n) for n in names)
    paddle_hits = sum(paddle_name_to_fair(n) not in (None, IGNORE) and not is_fair_name(n) for n in names)
    if fair_hits == 0 and paddle_hits == 0:
        raise UnknownParameterError(path, [n for n in names if not _fair_ignored(n)] or names or ["<none>"],
                                    "pickled")
    if paddle_hits > 0:
        return "paddle-pdparams", _paddle_params(path, dict(obj))
    return "fair-caffe2-pkl", _fair_from_dict(path, obj)


def detect_format(path) -> str:
    """Format name of ``path`` (see `FORMATS`), from its content; raises `CheckpointError` if none."""
    return load_checkpoint(path, allow_architecture_mismatch=True)[0]


def load_checkpoint(path, *, allow_architecture_mismatch: bool = False,
                    info: dict | None = None) -> tuple[str, dict[str, np.ndarray]]:
    """Read a Non-local ResNet checkpoint; return (format name, {FAIR name: float32 array}).

    ``path`` is a file (FAIR .pkl, Paddle .pdparams or combined params, mmaction2 .pth) or a Paddle
    model directory. Names are validated and mapped as the module docstring tables say; whether
    the set is complete for a given architecture is for the exporter to check.

    An mmaction2 checkpoint raises `ArchitectureMismatchError` (its network differs from FAIR's in
    ways weights cannot express) unless ``allow_architecture_mismatch`` is true. For an mmaction2
    file, a dict passed as ``info`` is filled with the non-local settings read from the file
    (``mode``, ``use_scale``, ``sub_sample``) and the ``differences`` from FAIR's network, so
    that a caller can build mmaction2's variant.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(path, "no such file or directory")
    kind = _sniff(path)

    if kind == "dir":
        fmt, arrays = _paddle_directory(path)
        return fmt, _paddle_params(path, arrays)

    if kind == "lod":
        # A combined params file (or a lone variable file) given directly: use its directory.
        directory = os.path.dirname(os.path.abspath(path))
        program = None
        stem = path[: -len(".pdiparams")] if path.endswith(".pdiparams") else None
        if stem and os.path.isfile(stem + ".pdmodel"):
            program = stem + ".pdmodel"
        program = program or _find_program(directory)
        if program is not None and os.path.basename(path) in {
                v[0] for v in _parse_program(program, _read_file(program))}:
            raise CheckpointError(path, "is one variable file of a Paddle model: pass the model directory "
                                        f"{directory}")
        if program is None:
            raise CheckpointError(path, "Paddle tensor data without names: pass the model directory, or put "
                                        "its program (__model__ / *.pdmodel) next to this file")
        arrays = _paddle_combined(path, path, program)
        return "paddle-combined", _paddle_params(path, arrays)

    if kind == "zip":
        fmt, ckpt = "mmaction2-pth", _torch_zip(path)
    elif kind == "pickle":
        fmt, ckpt = _load_pickle(path)
        if fmt == "pickle":
            return _classify_pickle(path, ckpt)
    else:
        raise CheckpointError(path, "not a checkpoint: neither a pickle, a torch zip archive nor Paddle "
                                    "tensor data")

    state, meta = _mmaction2_state_dict(path, ckpt)
    params, differences = _mmaction2_params(path, state, meta, info)
    if differences and not allow_architecture_mismatch:
        raise ArchitectureMismatchError(path, fmt, differences)
    return fmt, params
