"""Non-local ResNet (Wang et al., CVPR 2018) as ONNX: FAIR video-nonlocal-net's test network.

Four architectures, all ResNet bottleneck networks over NCTHW video with Non-local (NL) blocks in
res3 and res4, exactly as facebookresearch/video-nonlocal-net builds them for testing
(`lib/models/resnet_video.py` for C2D 8×8, `lib/models/resnet_video_org.py` for I3D 32×2,
`lib/models/resnet_helper.py`, `lib/models/nonlocal_helper.py`):

    arch          clip × stride   stem                        depth   NL blocks (0-based, after the block)
    c2d-r50-nl    8 × 8           conv1 1×7×7, pool1 1×3×3    50      res3_1 res3_3 res4_1 res4_3 res4_5
    i3d-r50-nl    32 × 2          conv1 5×7×7, pool1 2×3×3    50      res3_1 res3_3 res4_1 res4_3 res4_5
    c2d-r101-nl   8 × 8           conv1 1×7×7, pool1 1×3×3    101     res3_1 res3_3 res4_6 res4_13 res4_20
    i3d-r101-nl   32 × 2          conv1 5×7×7, pool1 2×3×3    101     res3_1 res3_3 res4_6 res4_13 res4_20

`c2d-r50-nl` is PaddleHub's `nonlocal_kinetics400` network (a port of FAIR's `c2d_nonlocal_8x8`),
`i3d-r50-nl` is FAIR's `i3d_nonlocal_32x2_IN_pretrain_400k`. For ResNet-101 FAIR's code uses
`layer_mod = 2` in res3 and `layer_mod = 2·4 − 1 = 7` in res4 (`idx % mod == mod − 1`), i.e. NL
blocks after res4_6, res4_13 and res4_20 — five NL blocks in all, as for ResNet-50.

Layer table (C2D at T=8 / I3D at T=32, 224×224 crop; kernels T×H×W; outputs C×T×H×W):

    stage  C2D-R50-NL 8×8                    I3D-R50-NL 32×2                     output C2D / I3D
    input                                                                        3×8×224² / 3×32×224²
    conv1  1×7×7, 64, str 1,2,2, pad 0,3,3   5×7×7, 64, str 2,2,2, pad 2,3,3     64×8×112² / 64×16×112²
           + BN + ReLU                       + BN + ReLU
    pool1  max 1×3×3, str 1,2,2, no pad      max 2×3×3, str 2,2,2, no pad        64×8×55² (both)
    res2   3 × [1×1×1, 64                    3 × [3×1×1, 64                      256×8×55² (both)
                1×3×3, 64                         1×3×3, 64
                1×1×1, 256]                       1×1×1, 256]   kt 3,3,3
    pool2  max 2×1×1, str 2,1,1, no pad      same                                256×4×55² (both)
    res3   4 × [1×1×1, 128                   4 × [kt×1×1, 128                    512×4×28² (both)
                1×3×3, 128, str 1,2,2*            1×3×3, 128, str 1,2,2*
                1×1×1, 512]                       1×1×1, 512]   kt 3,1,3,1
           NL after res3_1, res3_3           same
    res4   6 × [1×1×1, 256                   6 × [kt×1×1, 256                    1024×4×14² (both)
                1×3×3, 256, str 1,2,2*            1×3×3, 256, str 1,2,2*
                1×1×1, 1024]                      1×1×1, 1024]  kt 3,1,3,1,3,1
           NL after res4_1, res4_3, res4_5   same
    res5   3 × [1×1×1, 512                   3 × [kt×1×1, 512                    2048×4×7² (both)
                1×3×3, 512, str 1,2,2*            1×3×3, 512, str 1,2,2*
                1×1×1, 2048]                      1×1×1, 2048]  kt 1,3,1
    pool5  avg 4×7×7, str 1 (all remaining frames × 7×7)                         2048×1×1² (256²: 2×2)
    pred   1×1×1 conv 2048 → 400 with bias (stored as `pred_w` 400×2048),        400
           softmax over classes at each position, mean over positions
    * in the first block of the stage only, as for its `branch1` shortcut (1×1×1, str 1,2,2)

ResNet-101 differs only in res4: 23 blocks (I3D temporal kernels 3,1,3,1,… — 3 on even indices),
NL blocks after res4_6, res4_13, res4_20.

Learnable parameters (`count_params`, 400 classes; BN running statistics add 61,312 / 113,536 more
for R50 / R101): c2d-r50-nl 31,686,096; i3d-r50-nl 35,401,936 (FAIR's "35.4 M");
c2d-r101-nl 50,678,224; i3d-r101-nl 59,112,656.

Details shared by every architecture:

* Bottleneck `resN_i`: branch2a (kt×1×1 conv, temporal pad (kt−1)/2) → BN → ReLU → branch2b
  (1×3×3, spatial stride 2 in the first block of res3/4/5, pad 0,1,1) → BN → ReLU → branch2c (1×1×1)
  → BN; shortcut `branch1` (1×1×1 conv with the same spatial stride → BN) where the shape changes
  (first block of every stage), identity otherwise; sum → ReLU. Convolutions have no bias.
* BN in test mode: (x − rm) / sqrt(riv + 1.0000001e-5) · s + b (`riv` holds the running variance).
* NL block (embedded Gaussian, FAIR's default), input x of C channels after the block's ReLU:
  θ = conv1×1×1(x), and x max-pooled 1×2×2 (stride 1,2,2, no pad) feeds φ and g (1×1×1 convs);
  all four convs have biases and C/2 output channels (the "out" conv maps back to C).
  f = softmax_keys(θᵀφ · (C/2)^−½); y = g·fᵀ; z = x + BN(conv_out(y)). No ReLU after the sum.
  With `pairwise="dot_product"` the affinity is θᵀφ divided by the number of keys (THW after
  pooling), no softmax and no scale (FAIR's USE_SOFTMAX False branch).
* Test head: average pool over all remaining frames and 7×7 (or the whole plane when the crop
  leaves less than 7×7), stride 1, so larger crops give several positions (FAIR's fully
  convolutional test at 256²: 2×2); `pred` as a 1×1×1 conv with bias; softmax at each position;
  mean over positions. The output "scores" is [N, classes] probabilities (float32 also in fp16
  exports: the head's softmax and mean run in float32).

mmaction2 variant (`variant="mmaction2"`, i3d-r50-nl only): mmaction2's
`i3d_imagenet-pretrained-r50-nl-dot-product_8xb8-32x2x1-100e_kinetics400-rgb` network (base config
`_base_/models/i3d_r50.py`, `ResNet3d` in `mmaction/models/backbones/resnet3d.py`, mmcv's
`NonLocal3d`, `I3DHead`). The same parameters (names and shapes) as FAIR's I3D-R50-NL, but:

* pool1: max 1×3×3, stride 2,2,2 (`pool1_stride_t=2`), padding 0,1,1 (112 → 56, 16 → 8 frames);
  conv1 is FAIR's (5×7×7, `conv1_stride_t=2`, padding (k−1)/2 = 2,3,3).
* branch2a temporal kernels from `inflate=((1,1,1),(1,0,1,0),(1,0,1,0,1,0),(0,1,0))` with
  `inflate_style='3x1x1'` (3×1×1 in `conv1` of the bottleneck, padding 1,0,0), NL blocks from
  `non_local=((0,0,0),(0,1,0,1),(0,1,0,1,0,1),(0,0,0))` (after the block's ReLU): the same places
  as FAIR's. 'pytorch' style: the spatial stride sits in the 3×3 conv and the `downsample` conv.
* NL block (`sub_sample=True`, `mode='dot_product'`, `use_scale=False`, conv_out with a BN3d):
  θ, φ, g are 1×1×1 convs with biases on the full-resolution input; φ and g are max-pooled 1×2×2
  (stride 1,2,2) *after* their convs; f = θᵀφ / (number of keys), no softmax (`use_scale` does not
  apply to dot_product; with mode embedded_gaussian + use_scale it is FAIR's softmax(θᵀφ/√(C/2)));
  z = x + BN(conv_out(y)), conv_out has no bias (mmcv's ConvModule drops it before a norm layer;
  the FAIR-named `_out_b` is zeros).
* BN epsilon 1e-5 (torch's BatchNorm3d) everywhere.
* head (`I3DHead`, `spatial_type='avg'`): global average pool over T×H×W, dropout (identity at
  test), fc 2048 → classes, softmax (`average_clips='prob'`).
* input RGB, (pixel − mean) / std with ImageNet mean 123.675,116.28,103.53 and std
  58.395,57.12,57.375 (`ActionDataPreprocessor`); clips of 32 frames at stride 2 (`SampleFrames`
  clip_len=32, frame_interval=2), short side 256, centre crop 224.

Parameters use FAIR's caffe2 blob names (see `expected_params`): `conv1_w`,
`res_conv1_bn_{s,b,rm,riv}`, `res2_0_branch2a_w`, `res2_0_branch2a_bn_{s,b,rm,riv}`,
`res3_0_branch1_w`, `nonlocal_conv3_1_{theta,phi,g,out}_{w,b}`, `nonlocal_conv3_1_bn_{s,b,rm,riv}`,
`pred_w` (classes×2048), `pred_b`; convolution weights are 5-D (out, in, kt, kh, kw).

The graph never computes shapes at run time: reshapes use constant targets (0 = keep the batch
dimension when it is symbolic, the literal batch with `batch=`), so a static-batch export has only
fixed dimensions and no Shape nodes, which lets ONNX Runtime's CUDA EP capture CUDA graphs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from . import onnxgraph

BN_EPS = 1.0000001e-5
MEAN = (114.75, 114.75, 114.75)
STD = (57.375, 57.375, 57.375)
SCALE_SIZE = 256
DEFAULT_CROP = 224
POOL5_SIZE = 7
PAIRWISE = ("embedded_gaussian", "dot_product")
VARIANTS = ("fair", "mmaction2")

# mmaction2's I3D-R50-NL (see the module docstring).
MMACTION2_ARCH = "i3d-r50-nl"
MMACTION2_BN_EPS = 1e-5
MMACTION2_MEAN = (123.675, 116.28, 103.53)
MMACTION2_STD = (58.395, 57.12, 57.375)
MMACTION2_INFLATE = ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))
MMACTION2_NON_LOCAL = ((0, 0, 0), (0, 1, 0, 1), (0, 1, 0, 1, 0, 1), (0, 0, 0))
MMACTION2_CLIP_LENGTH = 32
MMACTION2_FRAME_STRIDE = 2


@dataclass(frozen=True)
class ArchSpec:
    """Everything that distinguishes the four networks."""

    name: str
    blocks: tuple  # bottlenecks in res2..res5
    conv1_kt: int  # temporal kernel of conv1 (temporal pad (kt-1)/2)
    conv1_st: int  # temporal stride of conv1
    pool1_kt: int  # temporal kernel = temporal stride of pool1
    temporal: tuple  # per stage res2..res5: temporal kernel of each block's branch2a (1 or 3)
    nonlocal_after: tuple  # per stage res2..res5: block indices followed by an NL block
    clip_length: int
    frame_stride: int
    fair_name: str  # FAIR's name of the network (documentation only)


def _alternating(n: int, first: int = 3) -> tuple:
    """3,1,3,1,… (or 1,3,1,… when first=1): FAIR's I3D temporal-kernel pattern."""
    other = 1 if first == 3 else 3
    return tuple(first if i % 2 == 0 else other for i in range(n))


def _layer_mod(n: int, mod: int) -> tuple:
    """FAIR's `idx % nonlocal_mod == nonlocal_mod - 1` placement rule."""
    return tuple(i for i in range(n) if i % mod == mod - 1)


def _spec(name, depth, i3d):
    blocks = (3, 4, 6, 3) if depth == 50 else (3, 4, 23, 3)
    if i3d:
        temporal = ((3, 3, 3), _alternating(4), _alternating(blocks[2]), _alternating(3, first=1))
    else:
        temporal = tuple((1,) * n for n in blocks)
    # resnet_video*.py: layer_mod = NONLOCAL.LAYER_MOD (2) for res3; for res4 also 2, except
    # ResNet-101 where it becomes 2 * 4 - 1 = 7.
    res4_mod = 2 if depth == 50 else 7
    nonlocal_after = ((), _layer_mod(blocks[1], 2), _layer_mod(blocks[2], res4_mod), ())
    return ArchSpec(
        name=name,
        blocks=blocks,
        conv1_kt=5 if i3d else 1,
        conv1_st=2 if i3d else 1,
        pool1_kt=2 if i3d else 1,
        temporal=temporal,
        nonlocal_after=nonlocal_after,
        clip_length=32 if i3d else 8,
        frame_stride=2 if i3d else 8,
        fair_name=(f"i3d_nonlocal_32x2 (ResNet-{depth})" if i3d
                   else f"c2d_nonlocal_8x8 (ResNet-{depth})"),
    )


ARCHS = {
    "c2d-r50-nl": _spec("c2d-r50-nl", 50, False),
    "i3d-r50-nl": _spec("i3d-r50-nl", 50, True),
    "c2d-r101-nl": _spec("c2d-r101-nl", 101, False),
    "i3d-r101-nl": _spec("i3d-r101-nl", 101, True),
}

STAGE_WIDTHS = ((64, 256), (128, 512), (256, 1024), (512, 2048))  # (inner, out) of res2..res5


def get_spec(arch: str) -> ArchSpec:
    try:
        return ARCHS[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}") from None


def check_variant(arch: str, variant: str) -> str:
    """Validate `variant` for `arch`: "fair" for every arch, "mmaction2" for i3d-r50-nl only."""
    get_spec(arch)
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    if variant == "mmaction2" and arch != MMACTION2_ARCH:
        raise ValueError(f"the mmaction2 variant exists for {MMACTION2_ARCH} only, not {arch}")
    return variant


# -- block plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    prefix: str  # e.g. "res3_0"
    dim_in: int
    dim_inner: int
    dim_out: int
    stride: int  # spatial stride of branch2b and branch1
    kt: int  # temporal kernel of branch2a
    shortcut_conv: bool  # has branch1
    nonlocal_name: str | None  # NL block following this one, e.g. "nonlocal_conv3_1"


def blocks(arch: str, variant: str = "fair") -> list[Block]:
    """The bottleneck blocks of `arch` in order, with the NL block that follows each (if any).

    The mmaction2 variant takes its temporal kernels and NL places from mmaction2's config
    (`inflate`, `non_local`); for I3D-R50 they coincide with FAIR's."""
    spec = get_spec(arch)
    check_variant(arch, variant)
    out, dim_in = [], 64
    for s, (n, (inner, dim_out)) in enumerate(zip(spec.blocks, STAGE_WIDTHS)):
        stage = s + 2
        for i in range(n):
            stride = 2 if (i == 0 and stage > 2) else 1
            if variant == "mmaction2":
                kt = 3 if MMACTION2_INFLATE[s][i] else 1
                has_nl = bool(MMACTION2_NON_LOCAL[s][i])
            else:
                kt, has_nl = spec.temporal[s][i], i in spec.nonlocal_after[s]
            nl = f"nonlocal_conv{stage}_{i}" if has_nl else None
            out.append(Block(f"res{stage}_{i}", dim_in, inner, dim_out, stride,
                             kt, dim_in != dim_out or stride != 1, nl))
            dim_in = dim_out
    return out


# -- parameters ------------------------------------------------------------------------------


def _bn_names(prefix: str, c: int) -> dict:
    return {f"{prefix}_{k}": (c,) for k in ("s", "b", "rm", "riv")}


def expected_params(arch: str, num_classes: int = 400, variant: str = "fair") -> dict[str, tuple]:
    """Name → shape of every parameter, FAIR caffe2 blob names, in graph order.

    The mmaction2 variant has the same names and shapes (its conv_out has no bias: `_out_b` is
    kept, and is zeros in weights read from mmaction2)."""
    spec = get_spec(arch)
    p: dict[str, tuple] = {"conv1_w": (64, 3, spec.conv1_kt, 7, 7)}
    p.update(_bn_names("res_conv1_bn", 64))
    for b in blocks(arch, variant):
        p[f"{b.prefix}_branch2a_w"] = (b.dim_inner, b.dim_in, b.kt, 1, 1)
        p.update(_bn_names(f"{b.prefix}_branch2a_bn", b.dim_inner))
        p[f"{b.prefix}_branch2b_w"] = (b.dim_inner, b.dim_inner, 1, 3, 3)
        p.update(_bn_names(f"{b.prefix}_branch2b_bn", b.dim_inner))
        p[f"{b.prefix}_branch2c_w"] = (b.dim_out, b.dim_inner, 1, 1, 1)
        p.update(_bn_names(f"{b.prefix}_branch2c_bn", b.dim_out))
        if b.shortcut_conv:
            p[f"{b.prefix}_branch1_w"] = (b.dim_out, b.dim_in, 1, 1, 1)
            p.update(_bn_names(f"{b.prefix}_branch1_bn", b.dim_out))
        if b.nonlocal_name:
            c, ci = b.dim_out, b.dim_out // 2
            for part in ("theta", "phi", "g"):
                p[f"{b.nonlocal_name}_{part}_w"] = (ci, c, 1, 1, 1)
                p[f"{b.nonlocal_name}_{part}_b"] = (ci,)
            p[f"{b.nonlocal_name}_out_w"] = (c, ci, 1, 1, 1)
            p[f"{b.nonlocal_name}_out_b"] = (c,)
            p.update(_bn_names(f"{b.nonlocal_name}_bn", c))
    p["pred_w"] = (num_classes, STAGE_WIDTHS[-1][1])
    p["pred_b"] = (num_classes,)
    return p


def count_params(arch: str, num_classes: int = 400, *, learnable_only: bool = True) -> int:
    """Number of parameters; learnable_only leaves out BN running statistics (rm, riv)."""
    total = 0
    for name, shape in expected_params(arch, num_classes).items():
        if learnable_only and (name.endswith("_rm") or name.endswith("_riv")):
            continue
        total += int(np.prod(shape))
    return total


def random_params(arch: str, seed: int, num_classes: int = 400, *,
                  pairwise: str = "embedded_gaussian", variant: str = "fair") -> dict[str, np.ndarray]:
    """Deterministic random float32 parameters with sensible scales.

    Convolutions get He-normal weights (std sqrt(2 / fan_in)); BN layers get scales 0.3–0.7,
    small offsets and running statistics, and running variances 0.5–1.5 (always positive). The
    residual branch2c BN and the NL BN use smaller scales so that activations stay O(1) through
    the 16–33 residual additions; the classifier is scaled so logits come out O(1).

    The NL θ/φ/g weights depend on the pairwise function the weights are meant for, as trained
    weights would: for the embedded Gaussian θ and φ get std 8/sqrt(C), so the softmax over keys
    is far from uniform (relative entropy about 0.5–0.9) and the attention really matters; the
    dot product has no softmax and is cubic in its input, so θ, φ and g get std 0.5/sqrt(C),
    which keeps the five NL blocks from amplifying each other.

    variant="mmaction2" draws the same numbers and then zeroes every NL `_out_b` (mmcv's conv_out
    has no bias).
    """
    check_variant(arch, variant)
    pairwise = pairwise.replace("-", "_")
    if pairwise not in PAIRWISE:
        raise ValueError(f"pairwise must be one of {PAIRWISE}, not {pairwise!r}")
    nl_std = {"embedded_gaussian": {"theta": 8.0, "phi": 8.0},
              "dot_product": {"theta": 0.5, "phi": 0.5, "g": 0.5}}[pairwise]
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in expected_params(arch, num_classes, variant).items():
        nl_part = name.rsplit("_", 2)[-2] if name.startswith("nonlocal") else None
        if nl_part in nl_std and name.endswith("_w"):
            a = rng.normal(0.0, nl_std[nl_part] / np.sqrt(shape[1]), shape)
        elif name == "pred_w":
            a = rng.normal(0.0, 1.0 / np.sqrt(shape[1]), shape)
        elif name == "pred_b":
            a = rng.normal(0.0, 0.1, shape)
        elif name.endswith("_w"):
            fan_in = int(np.prod(shape[1:]))
            a = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        elif name.endswith("_bn_s"):
            residual = "branch2c" in name or name.startswith("nonlocal")
            lo, hi = (0.1, 0.3) if residual else (0.3, 0.7)
            a = rng.uniform(lo, hi, shape)
        elif name.endswith("_bn_riv"):
            a = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("_bn_rm") or name.endswith("_bn_b"):
            a = rng.normal(0.0, 0.1, shape)
        elif name.endswith("_b"):  # NL conv biases
            a = rng.normal(0.0, 0.05, shape)
        else:  # pragma: no cover - every name is covered above
            raise AssertionError(name)
        if variant == "mmaction2" and name.endswith("_out_b"):
            a = np.zeros(shape)
        out[name] = a.astype(np.float32)
    return out


def infer_num_classes(params) -> int:
    b = params.get("pred_b") if hasattr(params, "get") else None
    if b is not None and np.ndim(b) == 1 and np.shape(b)[0] > 0:
        return int(np.shape(b)[0])
    return 400


def check_params(arch: str, params, num_classes: int | None = None, variant: str = "fair") -> None:
    """Raise ValueError listing every missing name, unexpected name and shape mismatch.

    The number of classes is taken from `pred_b` unless given.
    """
    if num_classes is None:
        num_classes = infer_num_classes(params)
    expected = expected_params(arch, num_classes, variant)
    missing = [n for n in expected if n not in params]
    unexpected = sorted(n for n in params if n not in expected)
    mismatched = [
        f"{n}: expected {tuple(shape)}, found {tuple(np.shape(params[n]))}"
        for n, shape in expected.items()
        if n in params and tuple(np.shape(params[n])) != tuple(shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {', '.join(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {', '.join(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: {'; '.join(mismatched)}")
    if problems:
        raise ValueError(f"parameters do not match {arch} ({num_classes} classes): "
                         + " | ".join(problems))


# -- shapes ----------------------------------------------------------------------------------


def _out_size(n: int, k: int, s: int, pad: int) -> int:
    return (n + 2 * pad - k) // s + 1


def feature_shapes(arch: str, frames: int | None = None, crop_size: int = DEFAULT_CROP,
                   variant: str = "fair") -> dict:
    """(C, T, H, W) after each stage, for the layer table and the head's pool kernel."""
    spec = get_spec(arch)
    check_variant(arch, variant)
    t = frames or spec.clip_length
    h = w = crop_size
    shapes = {"input": (3, t, h, w)}
    t, h, w = (_out_size(t, spec.conv1_kt, spec.conv1_st, (spec.conv1_kt - 1) // 2),
               _out_size(h, 7, 2, 3), _out_size(w, 7, 2, 3))
    shapes["conv1"] = (64, t, h, w)
    if variant == "mmaction2":  # max 1×3×3, stride 2,2,2, pad 0,1,1
        t, h, w = _out_size(t, 1, 2, 0), _out_size(h, 3, 2, 1), _out_size(w, 3, 2, 1)
    else:
        t, h, w = (_out_size(t, spec.pool1_kt, spec.pool1_kt, 0), _out_size(h, 3, 2, 0),
                   _out_size(w, 3, 2, 0))
    shapes["pool1"] = (64, t, h, w)
    for s, (_, dim_out) in enumerate(STAGE_WIDTHS):
        if s > 0:  # spatial stride 2 of branch2b (k3 pad 1) and branch1 (k1) agree
            h, w = _out_size(h, 3, 2, 1), _out_size(w, 3, 2, 1)
        shapes[f"res{s + 2}"] = (dim_out, t, h, w)
        if s == 0:
            t = _out_size(t, 2, 2, 0)
            shapes["pool2"] = (dim_out, t, h, w)
    for name, (c, t, h, w) in shapes.items():
        if min(t, h, w) < 1:
            raise ValueError(f"{arch}: {frames or spec.clip_length} frames at {crop_size}² leave "
                             f"no data after {name}")
    return shapes


# -- graph -----------------------------------------------------------------------------------


def _as_float(a) -> np.ndarray:
    a = np.asarray(a)
    return a if a.dtype.kind == "f" else a.astype(np.float32)


def weights_metadata(weights_tag: str) -> str:
    """model.weights value: any `random…` tag (e.g. `random:seed=0`) is written as `random`."""
    return "random" if weights_tag.split(":", 1)[0] == "random" else weights_tag


def _bn(g: onnxgraph.Graph, x: str, params, prefix: str, eps: float = BN_EPS) -> str:
    return g.batchnorm(x, params[prefix + "_s"], params[prefix + "_b"], params[prefix + "_rm"],
                       params[prefix + "_riv"], eps, hint=prefix)


def _nonlocal(g, x, params, name, shape, batch_dim, pairwise, variant="fair"):
    """z = x + BN(out(y)), y = g(pool(x)) · f(θ(x), φ(pool(x)))ᵀ over all T·H·W positions.

    mmaction2 (mmcv NonLocal3d, sub_sample): φ and g are pooled after their convs instead,
    y = pool(g(x)) · f(θ(x), pool(φ(x)))ᵀ, and BN uses epsilon 1e-5."""
    c, t, h, w = shape
    ci = c // 2
    hp, wp = _out_size(h, 2, 2, 0), _out_size(w, 2, 2, 0)
    queries, keys = t * h * w, t * hp * wp
    theta = g.conv(x, params[name + "_theta_w"], params[name + "_theta_b"],
                   strides=[1, 1, 1], pads=[0, 0, 0], hint=name + "_theta")
    if variant == "mmaction2":
        phi = g.conv(x, params[name + "_phi_w"], params[name + "_phi_b"],
                     strides=[1, 1, 1], pads=[0, 0, 0], hint=name + "_phi")
        phi = g.maxpool(phi, [1, 2, 2], [1, 2, 2], [0, 0, 0], hint=name + "_phi_pool")
        gx = g.conv(x, params[name + "_g_w"], params[name + "_g_b"],
                    strides=[1, 1, 1], pads=[0, 0, 0], hint=name + "_g")
        gx = g.maxpool(gx, [1, 2, 2], [1, 2, 2], [0, 0, 0], hint=name + "_g_pool")
    else:
        pooled = g.maxpool(x, [1, 2, 2], [1, 2, 2], [0, 0, 0], hint=name + "_pool")
        phi = g.conv(pooled, params[name + "_phi_w"], params[name + "_phi_b"],
                     strides=[1, 1, 1], pads=[0, 0, 0], hint=name + "_phi")
        gx = g.conv(pooled, params[name + "_g_w"], params[name + "_g_b"],
                    strides=[1, 1, 1], pads=[0, 0, 0], hint=name + "_g")
    # (N, Ci, T, H, W) -> (N, Ci, THW); the batch stays 0 ("copy") unless it is static.
    theta = g.op("Reshape", [theta, g.ints([batch_dim, ci, queries])], name + "_theta_re")
    phi = g.op("Reshape", [phi, g.ints([batch_dim, ci, keys])], name + "_phi_re")
    gx = g.op("Reshape", [gx, g.ints([batch_dim, ci, keys])], name + "_g_re")
    theta_t = g.op("Transpose", [theta], name + "_theta_tr", perm=[0, 2, 1])  # (N, THW, Ci)
    affinity = g.op("MatMul", [theta_t, phi], name + "_affinity")  # (N, queries, keys)
    if pairwise == "embedded_gaussian":
        scaled = g.op("Mul", [affinity, g.const(np.array(ci ** -0.5), name + "_scale")],
                      name + "_affinity_sc")
        f = g.op("Softmax", [scaled], name + "_prob", axis=-1)
    else:  # dot product: normalised by the number of keys, no softmax
        f = g.op("Mul", [affinity, g.const(np.array(1.0 / keys), name + "_inv_keys")],
                 name + "_prob")
    g_t = g.op("Transpose", [gx], name + "_g_tr", perm=[0, 2, 1])  # (N, keys, Ci)
    y = g.op("MatMul", [f, g_t], name + "_y")  # (N, queries, Ci)
    y = g.op("Transpose", [y], name + "_y_tr", perm=[0, 2, 1])  # (N, Ci, queries)
    y = g.op("Reshape", [y, g.ints([batch_dim, ci, t, h, w])], name + "_y_re")
    y = g.conv(y, params[name + "_out_w"], params[name + "_out_b"],
               strides=[1, 1, 1], pads=[0, 0, 0], hint=name + "_out")
    y = _bn(g, y, params, name + "_bn", MMACTION2_BN_EPS if variant == "mmaction2" else BN_EPS)
    return g.op("Add", [x, y], name + "_sum")


def _bottleneck(g, x, params, b: Block, eps: float = BN_EPS, two_d: bool = False):
    """A bottleneck block on NCTHW clips, or with `two_d` on frames (N·T, C, H, W)."""
    p = b.prefix
    pt = (b.kt - 1) // 2

    def conv(x, name, stride, pad, pad_t=0):
        w = params[p + name + "_w"]
        if two_d:
            return g.conv(x, _w2d(w), strides=[stride] * 2, pads=[pad] * 2, hint=p + name)
        return g.conv(x, w, strides=[1, stride, stride], pads=[pad_t, pad, pad], hint=p + name)

    y = g.relu(_bn(g, conv(x, "_branch2a", 1, 0, pt), params, p + "_branch2a_bn", eps))
    y = g.relu(_bn(g, conv(y, "_branch2b", b.stride, 1), params, p + "_branch2b_bn", eps))
    y = _bn(g, conv(y, "_branch2c", 1, 0), params, p + "_branch2c_bn", eps)
    if b.shortcut_conv:
        sc = _bn(g, conv(x, "_branch1", b.stride, 0), params, p + "_branch1_bn", eps)
    else:
        sc = x
    return g.relu(g.op("Add", [y, sc], p + "_sum"))



def _stacked_channels(channels: int, taps: int) -> int:
    """Channels of a stacked stem: channels·taps rounded up to a multiple of 8."""
    return -(-channels * taps // 8) * 8


def stem_taps(channels: int, taps: int, phases: int = 1) -> np.ndarray:
    """One-hot weights (k, channels, taps, phases, phases), k = `_stacked_channels` of
    channels·taps·phases²: output channel ((t·phases + ph)·phases + pw)·channels + c is input
    channel c at temporal tap t and spatial phase (ph, pw); the rest are zero."""
    k = _stacked_channels(channels, taps * phases * phases)
    w = np.zeros((k, channels, taps, phases, phases), dtype=np.float32)
    for t in range(taps):
        for ph in range(phases):
            for pw in range(phases):
                for c in range(channels):
                    w[((t * phases + ph) * phases + pw) * channels + c, c, t, ph, pw] = 1.0
    return w


def stack_stem(w, phases: int = 1) -> np.ndarray:
    """conv1_w (o, c, kt, kh, kw) → the weights (o, k, 1, ⌈kh/phases⌉, ⌈kw/phases⌉) of the same
    convolution over the channels `stem_taps(c, kt, phases)` makes (stride 2 with `phases=1`,
    stride 1 over the phases with `phases=2`; taps past the kernel and padding channels get
    zeros)."""
    w = np.asarray(w)
    o, c, kt, kh, kw = w.shape
    qh, qw = -(-kh // phases), -(-kw // phases)
    ext = np.zeros((o, c, kt, qh * phases, qw * phases), dtype=w.dtype)
    ext[:, :, :, :kh, :kw] = w
    # (o, c, kt, qh, ph, qw, pw) → (o, kt, ph, pw, c, qh, qw): the one-hot channel order.
    ext = ext.reshape(o, c, kt, qh, phases, qw, phases).transpose(0, 2, 4, 6, 1, 3, 5)
    out = np.zeros((o, _stacked_channels(c, kt * phases * phases), 1, qh, qw), dtype=w.dtype)
    out[:, : c * kt * phases * phases, 0] = ext.reshape(o, -1, qh, qw)
    return out


def unstack_stem(w, channels: int, taps: int, phases: int = 1, size: int = 7) -> np.ndarray:
    """The inverse of `stack_stem`: (o, k, 1, qh, qw) → conv1_w (o, channels, taps, size, size)."""
    w = np.asarray(w)
    o, _, _, qh, qw = w.shape
    n = channels * taps * phases * phases
    flat = w[:, :n, 0].reshape(o, taps, phases, phases, channels, qh, qw)
    ext = flat.transpose(0, 4, 1, 5, 2, 6, 3).reshape(o, channels, taps, qh * phases, qw * phases)
    return ext[:, :, :, :size, :size] if phases > 1 else ext


def _stacked_stem(g, x, w, t_stride: int, t_pad: int) -> str:
    """conv1 as two convolutions computing the same function: the temporal taps stacked into
    channels by a one-hot kt×1×1 convolution (exact: each output is one input value), then a
    1×7×7 convolution over them. cuDNN runs a kt×7×7 kernel over 3 channels slowly (half of
    I3D's GPU time); the stacked form is a 2-D-shaped convolution over 16 channels."""
    _, c, kt, _, _ = w.shape
    x = g.conv(x, stem_taps(c, kt), strides=[t_stride, 1, 1], pads=[t_pad, 0, 0],
               hint="conv1_taps")
    return g.conv(x, stack_stem(w), strides=[1, 2, 2], pads=[0, 3, 3], hint="conv1_stacked")


def _s2d_end_pad(size: int, kernel: int = 7, pad: int = 3, stride: int = 2) -> int:
    """Padding at the far end of a spatial axis for the space-to-depth stem: enough for the
    phases to reach every tap of the last output (one more when `size` is odd)."""
    out = (size + 2 * pad - kernel) // stride + 1
    taps = -(-kernel // stride)
    return (out + taps - 1) * stride - size - pad


def _s2d_stem(g, x, w, t_stride: int, t_pad: int, crop: int, two_d: bool = False) -> str:
    """conv1 (kt×7×7, spatial stride 2, padding 3) as two convolutions computing the same
    function: a one-hot kt×2×2 convolution of stride 2 stacks the temporal taps and the four
    spatial phases of the padded clip into channels (3·kt·4, rounded up to a multiple of 8; exact:
    each output is one input value), then a 1×4×4 convolution of stride 1 over them with the
    original weights rearranged (`stack_stem(w, 2)`). Neither convolution works over 3 channels
    with a 7×7 kernel, which cuDNN's tensor-core kernels do not take; the first reads each input
    value once. With `two_d`, the same on frames (N·T, 3, H, W) with 2-D kernels."""
    _, c, kt, _, _ = w.shape
    end = _s2d_end_pad(crop)
    taps, stacked = stem_taps(c, kt, 2), stack_stem(w, 2)
    if two_d:
        x = g.conv(x, taps[:, :, 0], strides=[2, 2], pads=[3, 3], pads_end=[end, end],
                   hint="conv1_phases")
        return g.conv(x, stacked[:, :, 0], strides=[1, 1], pads=[0, 0], hint="conv1_s2d")
    x = g.conv(x, taps, strides=[t_stride, 2, 2], pads=[t_pad, 3, 3],
               pads_end=[t_pad, end, end], hint="conv1_phases")
    return g.conv(x, stacked, strides=[1, 1, 1], pads=[0, 0, 0], hint="conv1_s2d")


def _network_3d(g, x, params, arch, shapes, pairwise, pool5_size, num_classes, batch_dim, variant,
                eps, fp16, stem="auto", crop=DEFAULT_CROP):
    """Stem to scores in FAIR's 5-D layout, on the NCTHW clip `x`."""
    spec = get_spec(arch)
    mm = variant == "mmaction2"
    # Stem.
    pt = (spec.conv1_kt - 1) // 2
    if stem == "auto":
        stem = default_stem(arch)
    if stem == "stacked" and spec.conv1_kt > 1:
        x = _stacked_stem(g, x, params["conv1_w"], spec.conv1_st, pt)
    elif stem == "s2d":
        x = _s2d_stem(g, x, params["conv1_w"], spec.conv1_st, pt, crop)
    else:
        x = g.conv(x, params["conv1_w"], strides=[spec.conv1_st, 2, 2], pads=[pt, 3, 3],
                   hint="conv1")
    x = g.relu(_bn(g, x, params, "res_conv1_bn", eps))
    if mm:
        x = g.maxpool(x, [1, 3, 3], [2, 2, 2], [0, 1, 1], hint="pool1")
    else:
        x = g.maxpool(x, [spec.pool1_kt, 3, 3], [spec.pool1_kt, 2, 2], [0, 0, 0], hint="pool1")

    # res2..res5 with the NL blocks; pool2 halves time after res2.
    for b in blocks(arch, variant):
        if b.prefix == "res3_0":
            x = g.maxpool(x, [2, 1, 1], [2, 1, 1], [0, 0, 0], hint="pool2")
        x = _bottleneck(g, x, params, b, eps)
        if b.nonlocal_name:
            stage = b.prefix.split("_")[0]
            x = _nonlocal(g, x, params, b.nonlocal_name, shapes[stage], batch_dim, pairwise,
                          variant)

    # Head: average pool (all frames, 7×7), pred as 1×1×1 conv, softmax per position, mean.
    # mmaction2 pools the whole T×H×W globally (one position), then fc and softmax.
    c5, t5, h5, w5 = shapes["res5"]
    if mm:
        kernel = [t5, h5, w5]
    else:
        kernel = [t5, min(pool5_size, h5), min(pool5_size, w5)]
    x = g.avgpool(x, kernel, [1, 1, 1], hint="pool5")
    pred_w = params["pred_w"].reshape(num_classes, c5, 1, 1, 1)
    x = g.conv(x, pred_w, params["pred_b"], strides=[1, 1, 1], pads=[0, 0, 0], hint="pred")
    if fp16:
        x = g.op("Cast", [x], "pred_float", to=onnx.TensorProto.FLOAT)
    x = g.op("Softmax", [x], "softmax_conv", axis=1)
    g.nodes.append(onnx.helper.make_node(
        "ReduceMean", [x], [onnxgraph.OUTPUT_NAME], name="softmax", axes=[2, 3, 4], keepdims=0))


# -- the 2-D form (C2D networks) ------------------------------------------------------------------
#
# Tensors are frames, (N·T, C, H, W), clip-major. Every convolution of a C2D network is 1×k×k, so
# it is a 2-D convolution of the frames; pool2 (max over pairs of frames) and the Non-local blocks
# (attention over all T·H·W positions of a clip) reshape to reach time; the head averages over
# frames. The same function as the 5-D graph, in the layout of cuDNN's 2-D kernels.

FORMS = ("conv3d", "2d")
STEMS = ("auto", "conv3d", "stacked", "s2d")


def default_stem(arch: str) -> str:
    """The stem `auto` stands for: s2d for the C2D networks (1×7×7 stems, for which cuDNN has
    no fast channels-last kernel over 3 colour channels), stacked for the I3D ones (s2d is not
    faster for them at every batch size). The engine's figures for each stem are in
    docs/benchmarks.md ("Engine steps against torch.compile")."""
    return "s2d" if get_spec(arch).conv1_kt == 1 else "stacked"


def _w2d(w):
    """A 1×k×k 3-D kernel as a k×k 2-D one."""
    w = np.asarray(w)
    if w.shape[2] != 1:
        raise ValueError(f"a {w.shape[2]}×{w.shape[3]}×{w.shape[4]} kernel has no 2-D form")
    return w[:, :, 0]


def _positions(g, x, t, h, w, c, hint):
    """Frames (N·T, C, H, W) → (N, T·H·W, C), positions in t, h, w order."""
    x = g.op("Transpose", [x], hint + "_nhwc", perm=[0, 2, 3, 1])
    return g.op("Reshape", [x, g.ints([-1, t * h * w, c])], hint + "_pos")


def _nonlocal_2d(g, x, params, name, shape, pairwise):
    """`_nonlocal` (FAIR variant) on frames."""
    c, t, h, w = shape
    ci = c // 2
    hp, wp = _out_size(h, 2, 2, 0), _out_size(w, 2, 2, 0)
    keys = t * hp * wp
    theta = g.conv(x, _w2d(params[name + "_theta_w"]), params[name + "_theta_b"],
                   strides=[1, 1], pads=[0, 0], hint=name + "_theta")
    pooled = g.maxpool(x, [2, 2], [2, 2], [0, 0], hint=name + "_pool")
    phi = g.conv(pooled, _w2d(params[name + "_phi_w"]), params[name + "_phi_b"],
                 strides=[1, 1], pads=[0, 0], hint=name + "_phi")
    gx = g.conv(pooled, _w2d(params[name + "_g_w"]), params[name + "_g_b"],
                strides=[1, 1], pads=[0, 0], hint=name + "_g")
    q = _positions(g, theta, t, h, w, ci, name + "_theta")  # (N, THW, Ci)
    k = g.op("Transpose", [_positions(g, phi, t, hp, wp, ci, name + "_phi")], name + "_phi_tr",
             perm=[0, 2, 1])  # (N, Ci, keys)
    v = _positions(g, gx, t, hp, wp, ci, name + "_g")  # (N, keys, Ci)
    affinity = g.op("MatMul", [q, k], name + "_affinity")
    if pairwise == "embedded_gaussian":
        scaled = g.op("Mul", [affinity, g.const(np.array(ci ** -0.5), name + "_scale")],
                      name + "_affinity_sc")
        f = g.op("Softmax", [scaled], name + "_prob", axis=-1)
    else:
        f = g.op("Mul", [affinity, g.const(np.array(1.0 / keys), name + "_inv_keys")],
                 name + "_prob")
    y = g.op("MatMul", [f, v], name + "_y")  # (N, THW, Ci)
    y = g.op("Reshape", [y, g.ints([-1, h, w, ci])], name + "_y_frames")
    y = g.op("Transpose", [y], name + "_y_nchw", perm=[0, 3, 1, 2])
    y = g.conv(y, _w2d(params[name + "_out_w"]), params[name + "_out_b"],
               strides=[1, 1], pads=[0, 0], hint=name + "_out")
    y = _bn(g, y, params, name + "_bn", BN_EPS)
    return g.op("Add", [x, y], name + "_sum")


def _network_2d(g, x, params, arch, shapes, pairwise, pool5_size, num_classes, stem="auto",
                crop=DEFAULT_CROP):
    """Stem to scores of a C2D network on the frames `x` (N·T, 3, H, W)."""
    if stem == "s2d":
        x = _s2d_stem(g, x, params["conv1_w"], 1, 0, crop, two_d=True)
    else:
        x = g.conv(x, _w2d(params["conv1_w"]), strides=[2, 2], pads=[3, 3], hint="conv1")
    x = g.relu(_bn(g, x, params, "res_conv1_bn", BN_EPS))
    x = g.maxpool(x, [3, 3], [2, 2], [0, 0], hint="pool1")
    for b in blocks(arch):
        if b.prefix == "res3_0":  # pool2: max over pairs of frames
            c, t, h, w = shapes["res2"]
            if t % 2:
                raise ValueError(f"the 2-D form needs an even number of frames at pool2, not {t}")
            x = g.op("Reshape", [x, g.ints([-1, 2, c, h, w])], "pool2_pairs")
            x = g.op("ReduceMax", [x], "pool2", axes=[1], keepdims=0)
        x = _bottleneck(g, x, params, b, two_d=True)
        if b.nonlocal_name:
            x = _nonlocal_2d(g, x, params, b.nonlocal_name, shapes[b.prefix.split("_")[0]],
                             pairwise)
    c5, t5, h5, w5 = shapes["res5"]
    kh, kw = min(pool5_size, h5), min(pool5_size, w5)
    x = g.avgpool(x, [kh, kw], [1, 1], hint="pool5")
    x = g.op("Reshape", [x, g.ints([-1, t5, c5, h5 - kh + 1, w5 - kw + 1])], "pool5_clips")
    x = g.op("ReduceMean", [x], "pool5_time", axes=[1], keepdims=0)
    pred_w = params["pred_w"].reshape(num_classes, c5, 1, 1)
    x = g.conv(x, pred_w, params["pred_b"], strides=[1, 1], pads=[0, 0], hint="pred")
    if g.dtype == np.float16:
        x = g.op("Cast", [x], "pred_float", to=onnx.TensorProto.FLOAT)
    x = g.op("Softmax", [x], "softmax_conv", axis=1)
    g.nodes.append(onnx.helper.make_node(
        "ReduceMean", [x], [onnxgraph.OUTPUT_NAME], name="softmax", axes=[2, 3], keepdims=0))


def build(
    arch: str,
    params,
    *,
    pairwise: str = "embedded_gaussian",
    fp16: bool = False,
    batch: int | None = None,
    crop_size: int = DEFAULT_CROP,
    frames: int | None = None,
    labels: list[str] | None = None,
    weights_tag: str = "random",
    pool5_size: int = POOL5_SIZE,
    variant: str = "fair",
    uint8: bool = False,
    form: str = "conv3d",
    stem: str = "auto",
) -> onnx.ModelProto:
    """Build the ONNX test network of `arch` with `params` (FAIR names, see `expected_params`).

    pairwise: "embedded_gaussian" (softmax, FAIR's default) or "dot_product".
    fp16: weights and input in float16 (the output stays float32).
    batch: a fixed batch size (every dimension static), else a symbolic "N".
    crop_size / frames: input plane and clip length (default 224 and the arch's clip length).
    labels: written to the metadata (must match the number of classes).
    weights_tag: `random…` or e.g. `fair:<file name>` for model.weights.
    pool5_size: spatial kernel of the head's average pool (FAIR: 7; smaller planes use the
      whole plane). Not used by the mmaction2 variant, whose head pools globally.
    variant: "fair" (default) or "mmaction2" (i3d-r50-nl only; see the module docstring).
    uint8: raw uint8 NTHWC input normalised inside the graph (see `onnxgraph.video_input`).
    form: "conv3d" (FAIR's 5-D layout) or "2d" (C2D networks only: the same function on frames,
      2-D convolutions throughout; see `_network_2d`). Input and output are the same.
    stem: "auto" (`default_stem`: s2d for C2D, stacked for I3D), "stacked" (I3D: the temporal
      taps stacked into channels first, see `_stacked_stem`;
      the same function, faster under CUDA) or "conv3d" (conv1 as one kt×7×7 convolution).
      C2D stems are 1×7×7 already and stay one convolution; or "s2d" (any network, both
      forms: the temporal taps and the 2×2 spatial phases stacked into channels, then a 1×4×4
      convolution of stride 1, see `_s2d_stem`).
    """
    spec = get_spec(arch)
    check_variant(arch, variant)
    mm = variant == "mmaction2"
    eps = MMACTION2_BN_EPS if mm else BN_EPS
    pairwise = pairwise.replace("-", "_")
    if pairwise not in PAIRWISE:
        raise ValueError(f"pairwise must be one of {PAIRWISE}, not {pairwise!r}")
    if batch is not None and int(batch) < 1:
        raise ValueError(f"batch must be positive, not {batch}")
    check_params(arch, params, variant=variant)
    num_classes = infer_num_classes(params)
    if labels is not None and len(labels) != num_classes:
        raise ValueError(f"{len(labels)} labels for a model with {num_classes} classes")
    frames = int(frames or spec.clip_length)
    shapes = feature_shapes(arch, frames, crop_size, variant)

    # Arrays of any float type are accepted (Graph.const casts them to the graph's dtype).
    params = {k: _as_float(v) for k, v in params.items()}
    g = onnxgraph.Graph(np.float16 if fp16 else np.float32)
    batch_dim = int(batch) if batch else 0  # Reshape: 0 copies the (symbolic) batch dimension
    n = int(batch) if batch else "N"
    mean, std = (MMACTION2_MEAN, MMACTION2_STD) if mm else (MEAN, STD)
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, not {form!r}")
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {STEMS}, not {stem!r}")
    if form == "2d":
        if mm or spec.conv1_kt != 1 or any(k != 1 for stage in spec.temporal for k in stage):
            raise ValueError(f"the 2-D form is for the C2D networks, not {arch}"
                             f"{' (mmaction2)' if mm else ''}")
        x = onnxgraph.video_frames(g, n, frames, crop_size, mean=mean, std=std, uint8=uint8)
        _network_2d(g, x, params, arch, shapes, pairwise, pool5_size, num_classes, stem,
                    crop_size)
    else:
        x = onnxgraph.video_input(g, n, frames, crop_size, mean=mean, std=std, uint8=uint8)
        _network_3d(g, x, params, arch, shapes, pairwise, pool5_size, num_classes, batch_dim,
                    variant, eps, fp16, stem, crop_size)
    g.output(onnxgraph.OUTPUT_NAME, [n, num_classes], elem_type=onnx.TensorProto.FLOAT)

    props = onnxgraph.metadata(
        clip_length=frames,
        frame_stride=MMACTION2_FRAME_STRIDE if mm else spec.frame_stride,
        scale_size=max(SCALE_SIZE, crop_size),
        crop_size=crop_size,
        mean=mean,
        std=std,
        layout="NTHWC" if uint8 else "NCTHW",
        output_kind="probabilities",
        labels=labels,
        name=arch,
        weights=weights_metadata(weights_tag),
    )
    model = g.to_model(arch, props)
    network = ("mmaction2 i3d_imagenet-pretrained-r50-nl 32x2x1" if mm
               else spec.fair_name)
    model.doc_string = (f"{arch}: Non-local ResNet test network ({network}), "
                        f"pairwise {pairwise}, weights {weights_tag}")
    return model
