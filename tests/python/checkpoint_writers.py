"""Writers of synthetic Non-local ResNet checkpoints in the published on-disk formats.

The original files cannot be downloaded here, so the readers in ``tools/nlexport/checkpoints.py``
are tested on files these writers produce from a FAIR-named parameter dict, with the official
parameter names, shapes and serialisations:

* `write_fair_pkl`: FAIR video-nonlocal-net ``c2_model_iter*.pkl`` as Python 2's cPickle wrote it
  (protocol 2, ``numpy.core.multiarray._reconstruct``, byte strings as BINSTRING), blobs inside
  ``{'blobs': ...}`` together with ``model_iter``, ``lr`` and ``*_momentum``; or (``style="py3"``) as
  Python 3's pickle writes the same dict.
* `write_paddle_dir`: Paddle 1.x ``save_persistables``/``save_inference_model`` output: one
  LoDTensor file per variable, or a combined ``__params__`` in sorted-name order; with an optional
  ``__model__`` ProgramDesc naming the persistable variables.
* `write_paddle_pdparams`: ``fluid.save`` / ``paddle.save`` pickle of ``{paddle_name: array}``.
* `write_mmaction2_pth`: mmaction2 checkpoint as ``torch.save`` writes it, in the zip layout of
  torch >= 1.6 (``archive/data.pkl`` protocol 2 with persistent ids ``('storage', torch.FloatStorage,
  key, 'cpu', numel)`` and ``torch._utils._rebuild_tensor_v2`` reductions, ``archive/byteorder``,
  ``archive/data/<key>`` 64-byte-aligned stored members, ``archive/version``) or in the legacy
  pre-1.6 layout. torch is not needed: the pickle globals are written by name.

The FAIR -> Paddle and FAIR -> mmaction2 names are computed here independently of the reader, from
the conventions of PaddleCV's ``nonlocal_model`` and mmaction2's ``ResNet3d``/``NonLocal3d``.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
import struct
import zlib

import numpy as np

# ---------------------------------------------------------------------------------------------
# FAIR caffe2 pickle


class _Py2PickleWriter:
    """Emit the protocol-2 opcodes Python 2's cPickle produced for dicts of numpy arrays."""

    def __init__(self):
        self.out = io.BytesIO()
        self.memo: dict[str, int] = {}

    def op(self, data: bytes):
        self.out.write(data)

    def global_(self, module: str, name: str):
        key = f"{module}\n{name}\n"
        if key in self.memo:
            self._get(self.memo[key])
            return
        self.op(b"c" + key.encode("ascii"))
        idx = len(self.memo) + 1
        self.memo[key] = idx
        self._put(idx)

    def _put(self, idx):
        self.op(b"q" + bytes([idx]) if idx < 256 else b"r" + struct.pack("<I", idx))

    def _get(self, idx):
        self.op(b"h" + bytes([idx]) if idx < 256 else b"j" + struct.pack("<I", idx))

    def int_(self, v: int):
        if 0 <= v < 256:
            self.op(b"K" + bytes([v]))
        elif 0 <= v < 65536:
            self.op(b"M" + struct.pack("<H", v))
        elif -(2 ** 31) <= v < 2 ** 31:
            self.op(b"J" + struct.pack("<i", v))
        else:
            raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
            self.op(b"\x8a" + bytes([len(raw)]) + raw)

    def str_(self, s: bytes):
        # A Python 2 `str`: SHORT_BINSTRING / BINSTRING.
        if len(s) < 256:
            self.op(b"U" + bytes([len(s)]) + s)
        else:
            self.op(b"T" + struct.pack("<I", len(s)) + s)

    def tuple_(self, items, emit):
        if not items:
            self.op(b")")
            return
        if len(items) > 3:
            self.op(b"(")
        for it in items:
            emit(it)
        self.op({1: b"\x85", 2: b"\x86", 3: b"\x87"}.get(len(items), b"t"))

    def ndarray(self, a: np.ndarray):
        a = np.asarray(a)
        dt = a.dtype
        self.global_("numpy.core.multiarray", "_reconstruct")
        self.global_("numpy", "ndarray")
        self.tuple_([0], self.int_)
        self.str_(b"b")
        self.op(b"\x87R")  # (ndarray, (0,), 'b') ; REDUCE
        self.op(b"(")  # state tuple
        self.int_(1)
        self.tuple_(list(a.shape), self.int_)
        self.global_("numpy", "dtype")
        self.str_(dt.str[1:].encode("ascii"))  # 'f4'
        self.op(b"\x89\x88\x87R")  # False, True, TUPLE3, REDUCE
        self.op(b"(")
        self.int_(3)
        self.str_(b"<" if dt.itemsize > 1 else b"|")
        self.op(b"NNN")
        self.int_(-1)
        self.int_(-1)
        self.int_(0)
        self.op(b"tb")  # dtype state; BUILD
        self.op(b"\x89")  # not Fortran order
        self.str_(np.ascontiguousarray(a).astype(dt.newbyteorder("<")).tobytes())
        self.op(b"tb")  # array state; BUILD

    def value(self, v):
        if isinstance(v, np.ndarray):
            self.ndarray(v)
        elif isinstance(v, (bool, np.bool_)):
            self.op(b"\x88" if v else b"\x89")
        elif isinstance(v, (int, np.integer)):
            self.int_(int(v))
        elif isinstance(v, float):
            self.op(b"G" + struct.pack(">d", v))
        elif isinstance(v, str):
            self.str_(v.encode("latin1"))
        elif isinstance(v, dict):
            self.dict_(v)
        else:
            raise TypeError(f"cannot write {type(v).__name__} as a Python 2 pickle")

    def dict_(self, d: dict):
        self.op(b"}")
        items = list(d.items())
        for start in range(0, len(items), 1000):  # cPickle batches SETITEMS by 1000
            self.op(b"(")
            for k, v in items[start:start + 1000]:
                self.str_(k.encode("latin1"))
                self.value(v)
            self.op(b"u")

    def dumps(self, obj) -> bytes:
        self.op(b"\x80\x02")
        self.value(obj)
        self.op(b".")
        return self.out.getvalue()


def fair_blobs_with_training_state(params: dict, *, model_iter=400000, lr=1e-4, momentum=True) -> dict:
    """The blob dict FAIR's ``save_model_params`` writes: params + momentum + model_iter + lr."""
    blobs = {"model_iter": int(model_iter), "lr": np.array([lr], dtype=np.float32)}
    if momentum:
        for name, value in params.items():
            if not name.endswith(("_rm", "_riv")):  # computed params have no momentum
                blobs[name + "_momentum"] = np.zeros_like(np.asarray(value, dtype=np.float32))
    blobs.update({k: np.asarray(v, dtype=np.float32) for k, v in params.items()})
    return blobs


def write_fair_pkl(path, params: dict, *, style="py2", wrap_blobs=True, **training) -> str:
    """Write a FAIR caffe2 checkpoint: ``{'blobs': {...}}`` (or the bare blob dict)."""
    blobs = fair_blobs_with_training_state(params, **training)
    obj = {"blobs": blobs} if wrap_blobs else blobs
    if style == "py2":
        data = _Py2PickleWriter().dumps(obj)
    elif style == "py3":
        data = pickle.dumps(obj, protocol=2)
    else:
        raise ValueError(style)
    with open(path, "wb") as f:
        f.write(data)
    return os.fspath(path)


# ---------------------------------------------------------------------------------------------
# Naming helpers (independent of the reader)

_FAIR_BLOCK = re.compile(r"^res([2-5])_(\d+)_branch(1|2[abc])_(w|bn_(s|b|rm|riv))$")
_FAIR_NL = re.compile(r"^nonlocal_conv([2-5])_(\d+)_(theta|phi|g|out|bn)_(w|b|s|rm|riv)$")


def stage_block_counts(params: dict) -> dict[int, int]:
    """Number of residual blocks of each stage present in a FAIR-named dict."""
    counts: dict[int, int] = {}
    for name in params:
        m = _FAIR_BLOCK.match(name)
        if m:
            stage, idx = int(m.group(1)), int(m.group(2))
            counts[stage] = max(counts.get(stage, 0), idx + 1)
    return counts


_PADDLE_BN_SUFFIX = {"s": "scale", "b": "offset", "rm": "mean", "riv": "variance"}


def fair_to_paddle_name(name: str, counts: dict[int, int]) -> str:
    """Paddle 1.x name of a FAIR parameter (PaddleCV ``nonlocal_model`` ParamAttr names)."""
    if name == "conv1_w":
        return "conv1_weights"
    if name.startswith("res_conv1_bn_"):
        return "bn_conv1_" + _PADDLE_BN_SUFFIX[name[len("res_conv1_bn_"):]]
    if name in ("pred_w", "pred_b"):
        return name
    m = _FAIR_BLOCK.match(name)
    if m:
        stage, idx, branch = int(m.group(1)), int(m.group(2)), m.group(3)
        # res_stage_nonlocal: chr(97 + idx), except a 23-block stage of ResNet-101: a, b1 … b22.
        if counts.get(stage) == 23:
            letter = "a" if idx == 0 else f"b{idx}"
        else:
            letter = chr(97 + idx)
        if m.group(4) == "w":
            return f"res{stage}{letter}_branch{branch}_weights"
        return f"bn{stage}{letter}_branch{branch}_{_PADDLE_BN_SUFFIX[m.group(5)]}"
    m = _FAIR_NL.match(name)
    if m and m.group(3) == "bn":
        return f"nonlocal_conv{m.group(1)}_{m.group(2)}_bn_{_PADDLE_BN_SUFFIX[m.group(4)]}"
    if m:
        return name  # nonlocal_conv3_1_theta_w: Paddle kept FAIR's names
    raise KeyError(f"no Paddle name for {name}")


_MM_BN_SUFFIX = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}
_MM_BRANCH = {"2a": "conv1", "2b": "conv2", "2c": "conv3", "1": "downsample"}


def fair_to_mmaction2_name(name: str) -> str | None:
    """mmaction2 state-dict key of a FAIR parameter; None for the conv_out bias mmaction2 lacks."""
    if name == "conv1_w":
        return "backbone.conv1.conv.weight"
    if name.startswith("res_conv1_bn_"):
        return "backbone.conv1.bn." + _MM_BN_SUFFIX[name[len("res_conv1_bn_"):]]
    if name == "pred_w":
        return "cls_head.fc_cls.weight"
    if name == "pred_b":
        return "cls_head.fc_cls.bias"
    m = _FAIR_BLOCK.match(name)
    if m:
        layer = f"backbone.layer{int(m.group(1)) - 1}.{int(m.group(2))}.{_MM_BRANCH[m.group(3)]}"
        return f"{layer}.conv.weight" if m.group(4) == "w" else f"{layer}.bn.{_MM_BN_SUFFIX[m.group(5)]}"
    m = _FAIR_NL.match(name)
    if m:
        block = f"backbone.layer{int(m.group(1)) - 1}.{int(m.group(2))}.non_local_block"
        part, kind = m.group(3), m.group(4)
        if part == "bn":
            return f"{block}.conv_out.bn.{_MM_BN_SUFFIX[kind]}"
        module = {"theta": "theta.conv", "phi": "phi.0.conv", "g": "g.0.conv", "out": "conv_out.conv"}[part]
        if part == "out" and kind == "b":
            return None  # ConvModule(bias='auto') with a norm layer has no bias
        return f"{block}.{module}.{'weight' if kind == 'w' else 'bias'}"
    raise KeyError(f"no mmaction2 name for {name}")


# ---------------------------------------------------------------------------------------------
# Paddle


def _varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64  # int32/int64 negatives: ten-byte two's complement
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(field: int, v: int) -> bytes:
    return _varint(field << 3) + _varint(v)


def _field_bytes(field: int, data: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(data)) + data


_PADDLE_DTYPE_CODE = {np.dtype("float32"): 5, np.dtype("float16"): 4, np.dtype("float64"): 6,
                      np.dtype("int64"): 3, np.dtype("int32"): 2}


def paddle_tensor_desc(dtype_code: int, dims, packed=False) -> bytes:
    """A serialised VarType.TensorDesc (proto2: dims unpacked unless ``packed``)."""
    out = _field_varint(1, dtype_code)
    if packed:
        out += _field_bytes(2, b"".join(_varint(int(d)) for d in dims))
    else:
        out += b"".join(_field_varint(2, int(d)) for d in dims)
    return out


def paddle_lod_tensor_bytes(a: np.ndarray, *, packed=False, lod=None, dtype_code=None) -> bytes:
    """One LoDTensor as Paddle's SerializeToStream writes it."""
    a = np.ascontiguousarray(a)
    code = _PADDLE_DTYPE_CODE[a.dtype] if dtype_code is None else dtype_code
    out = struct.pack("<I", 0)  # LoDTensor version
    lod = lod or []
    out += struct.pack("<Q", len(lod))
    for level in lod:
        level = np.asarray(level, dtype="<u8")
        out += struct.pack("<Q", level.nbytes) + level.tobytes()
    out += struct.pack("<I", 0)  # Tensor version
    desc = paddle_tensor_desc(code, a.shape, packed)
    out += struct.pack("<i", len(desc)) + desc
    out += a.astype(a.dtype.newbyteorder("<")).tobytes()
    return out


def paddle_program_bytes(variables: dict[str, tuple[int, tuple]]) -> bytes:
    """A minimal ProgramDesc: block 0 with feed/fetch, an input and the persistable ``variables``
    ({name: (dtype code, dims)}), in the given (program) order."""

    def var(name, vtype: bytes, persistable: bool) -> bytes:
        body = _field_bytes(1, name.encode()) + _field_bytes(2, vtype)
        if persistable:
            body += _field_varint(3, 1)
        return _field_bytes(3, body)  # BlockDesc.vars

    def lod_tensor_type(code, dims) -> bytes:
        lod_desc = _field_bytes(1, paddle_tensor_desc(code, dims)) + _field_varint(2, 0)
        return _field_varint(1, 7) + _field_bytes(3, lod_desc)  # LOD_TENSOR

    block = _field_varint(1, 0) + _field_varint(2, -1)  # idx 0, parent -1
    block += var("feed", _field_varint(1, 9), True)  # FEED_MINIBATCH
    block += var("fetch", _field_varint(1, 10), True)  # FETCH_LIST
    block += var("video", lod_tensor_type(5, (-1, 3, 8, 224, 224)), False)
    for name, (code, dims) in variables.items():
        block += var(name, lod_tensor_type(code, dims), True)
    # One op, skipped by readers: feed.
    op = _field_bytes(3, b"feed")  # OpDesc.type = 3
    block += _field_bytes(4, op)
    return _field_bytes(1, block) + _field_bytes(4, _field_varint(1, 1006000))  # blocks, version


def paddle_arrays(params: dict, *, pred_layout="conv", dtype=np.float32) -> dict[str, np.ndarray]:
    """FAIR params renamed and laid out as Paddle stores them."""
    counts = stage_block_counts(params)
    out = {}
    for name, value in params.items():
        a = np.asarray(value, dtype=dtype)
        if name == "pred_w":
            if pred_layout == "conv":  # test/infer program: conv3d (classes, 2048, 1, 1, 1)
                a = a.reshape(a.shape + (1, 1, 1))
            elif pred_layout == "fc":  # training program: fc (2048, classes)
                a = np.ascontiguousarray(a.T)
            else:
                raise ValueError(pred_layout)
        out[fair_to_paddle_name(name, counts)] = a
    return out


def write_paddle_dir(directory, params: dict, *, layout="per-param", program=True, pred_layout="conv",
                     dtype=np.float32, packed=False, optimizer_state=False, combined_name="__params__",
                     program_name="__model__") -> str:
    """Write a Paddle 1.x model directory (``layout``: ``per-param`` or ``combined``)."""
    os.makedirs(directory, exist_ok=True)
    arrays = paddle_arrays(params, pred_layout=pred_layout, dtype=dtype)
    if optimizer_state:  # what save_persistables of a training program adds
        for name in list(arrays)[:5]:
            arrays[name + "_velocity_0"] = np.zeros_like(arrays[name])
        arrays["learning_rate_0"] = np.array([0.01], dtype=np.float32)
        arrays["@LR_DECAY_COUNTER@"] = np.array([1000], dtype=np.int64)
    if program:
        variables = {n: (_PADDLE_DTYPE_CODE[a.dtype], a.shape) for n, a in arrays.items()}
        with open(os.path.join(directory, program_name), "wb") as f:
            f.write(paddle_program_bytes(variables))
    if layout == "per-param":
        for name, a in arrays.items():
            with open(os.path.join(directory, name), "wb") as f:
                f.write(paddle_lod_tensor_bytes(a, packed=packed))
    elif layout == "combined":  # save_combine: sorted by name, concatenated
        with open(os.path.join(directory, combined_name), "wb") as f:
            for name in sorted(arrays):
                f.write(paddle_lod_tensor_bytes(arrays[name], packed=packed))
    else:
        raise ValueError(layout)
    return os.fspath(directory)


def write_paddle_pdparams(path, params: dict, *, protocol=2, pred_layout="fc") -> str:
    """``fluid.save``-style pickle of {paddle name: array}."""
    with open(path, "wb") as f:
        pickle.dump(paddle_arrays(params, pred_layout=pred_layout), f, protocol=protocol)
    return os.fspath(path)


# ---------------------------------------------------------------------------------------------
# torch serialisation


class _Global:
    """Something that pickles as the global ``module.name`` without that module being importable."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __repr__(self):
        return f"{self.module}.{self.name}"

    def __call__(self, *args):  # pickle wants reduce functions to be callable
        raise TypeError(f"{self!r} is only a name to pickle")


REBUILD_TENSOR_V2 = _Global("torch._utils", "_rebuild_tensor_v2")
_STORAGE_TYPES = {np.dtype("float32"): "FloatStorage", np.dtype("float16"): "HalfStorage",
                  np.dtype("float64"): "DoubleStorage", np.dtype("int64"): "LongStorage",
                  np.dtype("int32"): "IntStorage", np.dtype("uint8"): "ByteStorage",
                  np.dtype("bool"): "BoolStorage"}


class Storage:
    """A torch storage: a flat array shared by the tensors that view it."""

    def __init__(self, flat: np.ndarray, type_name: str | None = None):
        self.flat = np.ascontiguousarray(flat).reshape(-1)
        # type_name for element types numpy lacks, e.g. "BFloat16Storage" over uint16 bits.
        self.type = _Global("torch", type_name or _STORAGE_TYPES[self.flat.dtype])


class Tensor:
    """A torch tensor: a view (offset, size, stride in elements) of a `Storage`."""

    def __init__(self, storage: Storage, offset: int, size, stride, requires_grad=False):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(size), tuple(stride)
        self.requires_grad = requires_grad

    @classmethod
    def of(cls, a: np.ndarray) -> "Tensor":
        a = np.ascontiguousarray(a)
        strides = tuple(s // a.itemsize for s in a.strides) if a.ndim else ()
        return cls(Storage(a), 0, a.shape, strides)


class _TorchPickler(pickle._Pickler):  # the pure-Python pickler, to write globals by name
    def __init__(self, file, persistent):
        super().__init__(file, protocol=2)
        self._persistent = persistent

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return self._persistent(obj)
        return None

    def reducer_override(self, obj):
        if isinstance(obj, np.ndarray):
            obj = Tensor.of(obj)
        if isinstance(obj, Tensor):
            # Tensor._reduce_ex_internal: (storage, offset, size, stride, requires_grad, hooks)
            return (REBUILD_TENSOR_V2, (obj.storage, obj.offset, obj.size, obj.stride,
                                        obj.requires_grad, collections.OrderedDict()))
        return NotImplemented

    def save_global(self, obj, name=None):
        if isinstance(obj, _Global):
            if id(obj) in self.memo:
                self.write(self.get(self.memo[id(obj)][0]))
                return
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[_Global] = lambda self, obj: self.save_global(obj)


def _torch_pickle(obj, persistent) -> bytes:
    buf = io.BytesIO()
    _TorchPickler(buf, persistent).dump(obj)
    return buf.getvalue()


def _storage_bytes(storage: Storage) -> bytes:
    return storage.flat.astype(storage.flat.dtype.newbyteorder("<")).tobytes()


class _AlignedZipWriter:
    """A zip of stored members whose data start on 64-byte boundaries, like PyTorchStreamWriter
    (the padding is an ``FB`` extra field of ``Z`` bytes in each local header)."""

    def __init__(self, f, alignment=64):
        self.f, self.alignment, self.entries = f, alignment, []

    def write(self, name: str, data: bytes):
        offset = self.f.tell()
        fname = name.encode("utf-8")
        start = offset + 30 + len(fname) + 4  # local header + name + FB extra header
        pad = (-start) % self.alignment
        extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
        crc = zlib.crc32(data) & 0xFFFFFFFF
        header = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, crc, len(data), len(data),
                             len(fname), len(extra))
        self.f.write(header + fname + extra)
        assert self.f.tell() % self.alignment == 0
        self.f.write(data)
        self.entries.append((fname, crc, len(data), offset))

    def close(self):
        cd_start = self.f.tell()
        for fname, crc, size, offset in self.entries:
            self.f.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0x21, crc, size,
                                     size, len(fname), 0, 0, 0, 0, 0, offset) + fname)
        cd_size = self.f.tell() - cd_start
        n = len(self.entries)
        self.f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, cd_size, cd_start, 0))


def write_torch_zip(path, obj, *, archive="archive") -> str:
    """``torch.save(obj, path)`` (zip serialisation) for objects whose tensors are numpy arrays or
    `Tensor` views; ``archive`` is the root folder (torch uses ``archive`` when saving to a stream,
    as mmengine does)."""
    keys: dict[int, tuple[str, Storage]] = {}

    def persistent(storage: Storage):
        if id(storage) not in keys:
            keys[id(storage)] = (str(len(keys)), storage)
        key = keys[id(storage)][0]
        return ("storage", storage.type, key, "cpu", storage.flat.size)

    data_pkl = _torch_pickle(obj, persistent)
    with open(path, "wb") as f:
        z = _AlignedZipWriter(f)
        z.write(f"{archive}/data.pkl", data_pkl)
        z.write(f"{archive}/byteorder", b"little")
        for key, storage in sorted(keys.values(), key=lambda ks: ks[0]):  # sorted as strings, like torch
            z.write(f"{archive}/data/{key}", _storage_bytes(storage))
        z.write(f"{archive}/version", b"3\n")
        z.write(f"{archive}/.data/serialization_id", b"1234567890123456789012345678901234567890")
        z.close()
    return os.fspath(path)


def write_torch_legacy(path, obj) -> str:
    """``torch.save`` of torch < 1.6: magic, protocol version, sys info, the object pickle (persistent
    ids with a view field), the list of storage keys, then each storage as int64 numel + data."""
    keys: dict[int, tuple[str, Storage]] = {}

    def persistent(storage: Storage):
        if id(storage) not in keys:
            keys[id(storage)] = (str(1000 + len(keys)), storage)
        key = keys[id(storage)][0]
        return ("storage", storage.type, key, "cpu", storage.flat.size, None)

    with open(path, "wb") as f:
        f.write(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2))
        f.write(pickle.dumps(1001, protocol=2))
        f.write(pickle.dumps({"protocol_version": 1001, "little_endian": True,
                              "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))
        f.write(_torch_pickle(obj, persistent))
        ordered = list(keys.values())
        f.write(pickle.dumps([k for k, _ in ordered], protocol=2))
        for _key, storage in ordered:
            f.write(struct.pack("<q", storage.flat.size))
            f.write(_storage_bytes(storage))
    return os.fspath(path)


# ---------------------------------------------------------------------------------------------
# mmaction2

MMACTION2_CONFIG = """model = dict(
    backbone=dict(
        conv1_kernel=(5, 7, 7,),
        conv1_stride_t=2,
        depth=50,
        inflate=((1, 1, 1,), (1, 0, 1, 0,), (1, 0, 1, 0, 1, 0,), (0, 1, 0,),),
        non_local=((0, 0, 0,), (0, 1, 0, 1,), (0, 1, 0, 1, 0, 1,), (0, 0, 0,),),
        non_local_cfg=dict(
            mode='{mode}',
            norm_cfg=dict(requires_grad=True, type='BN3d'),
            sub_sample=True,
            use_scale={use_scale}),
        pool1_stride_t=2,
        type='ResNet3d'),
    cls_head=dict(in_channels=2048, num_classes=400, spatial_type='avg', type='I3DHead'),
    type='Recognizer3D')
"""


def mmaction2_state_dict(params: dict, *, dtype=np.float32, batches_tracked=True):
    """The state dict mmaction2 would hold for these FAIR params (an OrderedDict with
    ``_metadata``). mmaction2 has no conv_out bias; a non-zero FAIR ``out_b`` is folded into the
    following BN's running mean (BN(conv + b) with mean m equals BN(conv) with mean m - b)."""
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    for name in list(params):
        if name.endswith("_out_b"):
            rm = name[: -len("out_b")] + "bn_rm"
            if rm in params:
                params[rm] = params[rm] - params[name]
    state = collections.OrderedDict()
    for name, value in params.items():
        key = fair_to_mmaction2_name(name)
        if key is None:
            continue
        state[key] = value.astype(dtype)
        if batches_tracked and key.endswith(".running_var"):
            state[key[: -len("running_var")] + "num_batches_tracked"] = np.array(12345, dtype=np.int64)
    state._metadata = collections.OrderedDict(
        [("", {"version": 1}), ("backbone", {"version": 1}), ("cls_head", {"version": 1})])
    return state


def write_mmaction2_pth(path, params: dict, *, legacy=False, bare=False, dtype=np.float32, mode="dot_product",
                        use_scale=False, module_prefix=False, message_hub=True) -> str:
    """Write an mmaction2 checkpoint of FAIR ``params`` (zip or ``legacy`` torch serialisation)."""
    state = mmaction2_state_dict(params, dtype=dtype)
    if module_prefix:
        metadata = state._metadata
        state = collections.OrderedDict(("module." + k, v) for k, v in state.items())
        state._metadata = metadata
    if bare:
        obj = state
    else:
        meta = {
            "mmengine_version": "0.10.4",
            "cfg": MMACTION2_CONFIG.format(mode=mode, use_scale=use_scale),
            "seed": 0,
            "epoch": 100,
            "iter": 375100,
            "dataset_meta": {"classes": None},
        }
        obj = {"meta": meta, "state_dict": state}
        if message_hub:
            # mmengine stores logging state as objects of its own classes.
            hub = _Opaque("mmengine.logging.history_buffer", "HistoryBuffer", {"max_length": 1000})
            obj["message_hub"] = {"log_scalars": {"train/loss": hub}, "runtime_info": {"epoch": 100}}
    return (write_torch_legacy if legacy else write_torch_zip)(path, obj)


class _Opaque:
    """An object of a class from a library that is not installed (pickled by name + state)."""

    def __init__(self, module, name, state):
        self.cls, self.state = _Global(module, name), state

    def __reduce__(self):
        return (self.cls, (), self.state)
