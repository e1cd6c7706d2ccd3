"""Plain NumPy forward pass of the Non-local ResNet test networks, for checking the ONNX export.

Written from the network description (FAIR video-nonlocal-net's test network; see docs/design.md,
"Models") and deliberately independent of the exporter: its own architecture table (NL block
positions and temporal kernels spelled out, not derived), convolutions as explicit loops over
kernel taps with tensor contractions, everything in float64. Only the parameter names (FAIR's
caffe2 blob names) are shared, because they are the contract.

    probs = forward("c2d-r50-nl", params, video)   # video: (N, 3, T, H, W) normalised pixels

`variant="mmaction2"` (i3d-r50-nl) is mmaction2's I3D-R50-NL 32x2x1 as its config describes it
(ResNet3d with conv1_kernel 5x7x7, conv1_stride_t 2, pool1_stride_t 2, inflate pattern, non_local
pattern; mmcv NonLocal3d with sub_sample, conv_out + BN3d; I3DHead): pool1 max 1x3x3 stride 2,2,2
padded 0,1,1; the NL block max-pools phi and g 1x2x2 after their convolutions; BN epsilon 1e-5;
the head averages everything, applies the fc layer and one softmax.
"""

from __future__ import annotations

import numpy as np

EPS = 1.0000001e-5
MMACTION2_EPS = 1e-5


def mmaction2_architecture() -> dict:
    """mmaction2 i3d_r50 base config + the nl-dot-product config, spelled out."""
    return {
        "conv1": dict(kernel=(5, 7, 7), stride=(2, 2, 2), pad=(2, 3, 3)),  # pad (k - 1) // 2
        "pool1": dict(kernel=(1, 3, 3), stride=(2, 2, 2), pad=(0, 1, 1)),
        "blocks": [3, 4, 6, 3],
        "width": [64, 128, 256, 512],
        # inflate=((1,1,1),(1,0,1,0),(1,0,1,0,1,0),(0,1,0)), inflate_style '3x1x1': conv1 3x1x1.
        "inflate": [[1, 1, 1], [1, 0, 1, 0], [1, 0, 1, 0, 1, 0], [0, 1, 0]],
        "non_local": [[0, 0, 0], [0, 1, 0, 1], [0, 1, 0, 1, 0, 1], [0, 0, 0]],
    }


def architecture(arch: str) -> dict:
    """Stem, blocks per stage, branch2a temporal kernels and NL positions of each network."""
    i3d = arch.startswith("i3d")
    deep = "r101" in arch
    res4_blocks = 23 if deep else 6
    cfg = {
        "conv1": dict(kernel=(5, 7, 7), stride=(2, 2, 2), pad=(2, 3, 3)) if i3d
        else dict(kernel=(1, 7, 7), stride=(1, 2, 2), pad=(0, 3, 3)),
        "pool1": dict(kernel=(2, 3, 3), stride=(2, 2, 2)) if i3d
        else dict(kernel=(1, 3, 3), stride=(1, 2, 2)),
        "blocks": [3, 4, res4_blocks, 3],
        "width": [64, 128, 256, 512],  # bottleneck inner widths; outputs are 4x these
    }
    if i3d:
        cfg["temporal"] = [
            [3, 3, 3],
            [3, 1, 3, 1],
            [3, 1] * 11 + [3] if deep else [3, 1, 3, 1, 3, 1],
            [1, 3, 1],
        ]
    else:
        cfg["temporal"] = [[1] * n for n in cfg["blocks"]]
    # NL blocks follow these blocks (0-based within the stage).
    cfg["nonlocal"] = [[], [1, 3], [6, 13, 20] if deep else [1, 3, 5], []]
    return cfg


# -- primitive operations (float64) ----------------------------------------------------------


def conv3d(x, w, b=None, stride=(1, 1, 1), pad=(0, 0, 0)):
    """x (N, C, T, H, W), w (O, C, kt, kh, kw): cross-correlation, zero padding."""
    x = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pad])
    _, _, T, H, W = x.shape
    O, _, kt, kh, kw = w.shape
    st, sh, sw = stride
    To, Ho, Wo = (T - kt) // st + 1, (H - kh) // sh + 1, (W - kw) // sw + 1
    out = np.zeros((O, x.shape[0], To, Ho, Wo))
    for a in range(kt):
        for i in range(kh):
            for j in range(kw):
                patch = x[:, :, a:a + st * (To - 1) + 1:st, i:i + sh * (Ho - 1) + 1:sh,
                          j:j + sw * (Wo - 1) + 1:sw]
                out += np.tensordot(w[:, :, a, i, j], patch, axes=([1], [1]))
    out = out.transpose(1, 0, 2, 3, 4)
    if b is not None:
        out = out + b.reshape(1, -1, 1, 1, 1)
    return out


def _pool(x, kernel, stride, reduce):
    _, _, T, H, W = x.shape
    kt, kh, kw = kernel
    st, sh, sw = stride
    To, Ho, Wo = (T - kt) // st + 1, (H - kh) // sh + 1, (W - kw) // sw + 1
    windows = [
        x[:, :, a:a + st * (To - 1) + 1:st, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw]
        for a in range(kt) for i in range(kh) for j in range(kw)
    ]
    return reduce(np.stack(windows), axis=0)


def max_pool(x, kernel, stride, pad=(0, 0, 0)):
    """No padding by default (FAIR's pool1, pool2 and the NL 1×2×2 pool); padded cells are -inf."""
    if any(pad):
        x = np.pad(x, [(0, 0), (0, 0)] + [(q, q) for q in pad], constant_values=-np.inf)
    return _pool(x, kernel, stride, np.max)


def avg_pool(x, kernel, stride):
    return _pool(x, kernel, stride, np.mean)


def batch_norm(x, p, prefix, eps=EPS):
    s, b = p[prefix + "_s"], p[prefix + "_b"]
    rm, riv = p[prefix + "_rm"], p[prefix + "_riv"]
    shape = (1, -1, 1, 1, 1)
    return (x - rm.reshape(shape)) / np.sqrt(riv.reshape(shape) + eps) * s.reshape(shape) \
        + b.reshape(shape)


def relu(x):
    return np.maximum(x, 0.0)


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# -- network pieces --------------------------------------------------------------------------


def nonlocal_block(x, p, name, pairwise="embedded_gaussian"):
    n, c, t, h, w = x.shape
    inner = c // 2
    theta = conv3d(x, p[name + "_theta_w"], p[name + "_theta_b"])
    pooled = max_pool(x, (1, 2, 2), (1, 2, 2))
    phi = conv3d(pooled, p[name + "_phi_w"], p[name + "_phi_b"])
    g = conv3d(pooled, p[name + "_g_w"], p[name + "_g_b"])
    theta = theta.reshape(n, inner, -1)
    phi = phi.reshape(n, inner, -1)
    g = g.reshape(n, inner, -1)
    affinity = np.einsum("nci,ncj->nij", theta, phi)  # queries × keys
    if pairwise == "embedded_gaussian":
        f = softmax(affinity * inner ** -0.5, axis=2)
    elif pairwise == "dot_product":
        f = affinity / affinity.shape[2]
    else:
        raise ValueError(pairwise)
    y = np.einsum("nij,ncj->nci", f, g).reshape(n, inner, t, h, w)
    y = conv3d(y, p[name + "_out_w"], p[name + "_out_b"])
    return x + batch_norm(y, p, name + "_bn")


def bottleneck(x, p, prefix, inner, out_ch, stride, kt):
    y = relu(batch_norm(conv3d(x, p[prefix + "_branch2a_w"], pad=((kt - 1) // 2, 0, 0)),
                        p, prefix + "_branch2a_bn"))
    y = relu(batch_norm(conv3d(y, p[prefix + "_branch2b_w"], stride=(1, stride, stride),
                               pad=(0, 1, 1)), p, prefix + "_branch2b_bn"))
    y = batch_norm(conv3d(y, p[prefix + "_branch2c_w"]), p, prefix + "_branch2c_bn")
    if x.shape[1] != out_ch or stride != 1:
        x = batch_norm(conv3d(x, p[prefix + "_branch1_w"], stride=(1, stride, stride)),
                       p, prefix + "_branch1_bn")
    return relu(x + y)


def mmaction2_nonlocal_block(x, p, name, mode="dot_product"):
    """mmcv NonLocal3d (sub_sample=True, conv_out followed by BN3d, no conv_out bias)."""
    n, c, t, h, w = x.shape
    inner = c // 2
    theta = conv3d(x, p[name + "_theta_w"], p[name + "_theta_b"]).reshape(n, inner, -1)
    phi = max_pool(conv3d(x, p[name + "_phi_w"], p[name + "_phi_b"]), (1, 2, 2), (1, 2, 2))
    g = max_pool(conv3d(x, p[name + "_g_w"], p[name + "_g_b"]), (1, 2, 2), (1, 2, 2))
    phi = phi.reshape(n, inner, -1)
    g = g.reshape(n, inner, -1)
    pairwise = np.einsum("nci,ncj->nij", theta, phi)
    if mode == "dot_product":  # divided by the number of keys, no softmax
        pairwise = pairwise / phi.shape[2]
    elif mode == "embedded_gaussian":  # use_scale=True
        pairwise = softmax(pairwise / np.sqrt(inner), axis=2)
    else:
        raise ValueError(mode)
    y = np.einsum("nij,ncj->nci", pairwise, g).reshape(n, inner, t, h, w)
    y = conv3d(y, p[name + "_out_w"])  # ConvModule drops the bias before its norm layer
    if name + "_out_b" in p:
        assert not np.any(p[name + "_out_b"]), "mmaction2's conv_out has no bias"
    return x + batch_norm(y, p, name + "_bn", MMACTION2_EPS)


def mmaction2_forward(params, video, mode="dot_product"):
    """mmaction2 I3D-R50-NL: class probabilities (N, classes) of one clip."""
    cfg = mmaction2_architecture()
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = np.asarray(video, dtype=np.float64)
    bn = lambda y, prefix: batch_norm(y, p, prefix, MMACTION2_EPS)  # noqa: E731

    c1 = cfg["conv1"]
    x = relu(bn(conv3d(x, p["conv1_w"], stride=c1["stride"], pad=c1["pad"]), "res_conv1_bn"))
    x = max_pool(x, cfg["pool1"]["kernel"], cfg["pool1"]["stride"], cfg["pool1"]["pad"])
    for s in range(4):
        inner = cfg["width"][s]
        for i in range(cfg["blocks"][s]):
            prefix = f"res{s + 2}_{i}"
            stride = 2 if (s > 0 and i == 0) else 1  # 'pytorch' style: in conv2 and downsample
            inflate = cfg["inflate"][s][i]
            y = conv3d(x, p[prefix + "_branch2a_w"], pad=(1, 0, 0) if inflate else (0, 0, 0))
            y = relu(bn(y, prefix + "_branch2a_bn"))
            y = conv3d(y, p[prefix + "_branch2b_w"], stride=(1, stride, stride), pad=(0, 1, 1))
            y = relu(bn(y, prefix + "_branch2b_bn"))
            y = bn(conv3d(y, p[prefix + "_branch2c_w"]), prefix + "_branch2c_bn")
            if i == 0:  # downsample: stride != 1 or inplanes != 4 * planes
                x = bn(conv3d(x, p[prefix + "_branch1_w"], stride=(1, stride, stride)),
                       prefix + "_branch1_bn")
            x = relu(x + y)
            if cfg["non_local"][s][i]:
                x = mmaction2_nonlocal_block(x, p, f"nonlocal_conv{s + 2}_{i}", mode)
        if s == 0:
            x = max_pool(x, (2, 1, 1), (2, 1, 1))  # pool2
    feat = x.mean(axis=(2, 3, 4))  # AdaptiveAvgPool3d((1, 1, 1)); dropout is the identity
    logits = feat @ p["pred_w"].T + p["pred_b"]
    return softmax(logits, axis=1)


def forward(arch, params, video, pairwise="embedded_gaussian", pool5_size=7, variant="fair"):
    """Class probabilities (N, classes), averaged over the head's positions."""
    if variant == "mmaction2":
        if arch != "i3d-r50-nl":
            raise ValueError(f"mmaction2 variant of {arch}")
        return mmaction2_forward(params, video, pairwise)
    if variant != "fair":
        raise ValueError(variant)
    cfg = architecture(arch)
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = np.asarray(video, dtype=np.float64)

    c1 = cfg["conv1"]
    x = conv3d(x, p["conv1_w"], stride=c1["stride"], pad=c1["pad"])
    x = relu(batch_norm(x, p, "res_conv1_bn"))
    x = max_pool(x, cfg["pool1"]["kernel"], cfg["pool1"]["stride"])

    for s in range(4):
        stage = s + 2
        if stage == 3:
            x = max_pool(x, (2, 1, 1), (2, 1, 1))  # pool2
        inner = cfg["width"][s]
        for i in range(cfg["blocks"][s]):
            stride = 2 if (stage > 2 and i == 0) else 1
            x = bottleneck(x, p, f"res{stage}_{i}", inner, 4 * inner, stride,
                           cfg["temporal"][s][i])
            if i in cfg["nonlocal"][s]:
                x = nonlocal_block(x, p, f"nonlocal_conv{stage}_{i}", pairwise)

    _, _, t, h, w = x.shape
    x = avg_pool(x, (t, min(pool5_size, h), min(pool5_size, w)), (1, 1, 1))
    logits = np.einsum("nctij,kc->nktij", x, p["pred_w"]) + p["pred_b"].reshape(1, -1, 1, 1, 1)
    return softmax(logits, axis=1).mean(axis=(2, 3, 4))
