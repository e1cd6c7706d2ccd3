#!/usr/bin/env python3
"""Summarises kernel-level profiles written by benches/gpu/kprof.c.

    python3 benches/gpu/kprof.py PROFILE.tsv [--top 12]

Each profiler range is labelled `<name>:clips=<N>` (KPROF_LABEL; N is the number of clips the
range processed), so times are given per clip. Prints, per range: GPU busy time per clip, the
share of the range the card was busy, and how the busy time splits into kinds of work
(separate bias additions, layout changes, convolutions, softmax, matrix products, pooling,
reductions, element-wise work, copies); then the heaviest kernels of each range.
"""
import argparse
import re
import sys

# First match wins; kernel names are searched case-insensitively.
KINDS = [
    # cuDNN's generic tensor op: ONNX Runtime adds a convolution's bias with it when the bias
    # is not fused into the convolution.
    ("bias", r"op_generic_tensor"),
    ("layout", r"transpose|nchwtonhwc|nhwctonchw|nchw2nhwc|nhwc2nchw|permute|layout|"
               r"convertlayout|tensor_transform"),
    ("conv", r"fprop|conv|implicit|winograd|fft|dgrad|wgrad"),
    ("softmax", r"softmax|attention|fmha|flash|sdpa"),
    ("gemm", r"gemm|matmul|cublas|cutlass"),
    ("pool", r"pool"),
    ("reduce", r"reduce|mean"),
    ("elementwise", r"elementwise|binary|unary|add|relu|mul|cast|clip|copy|fill|scale|"
                    r"normali|sub|div|where|expand|concat|slice|gather|pad"),
]
COLUMNS = [k for k, _ in KINDS] + ["copies", "other"]


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, pattern in KINDS:
        if re.search(pattern, low):
            return kind
    return "other"


def read(path: str) -> list[dict]:
    ranges, cur = [], None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "range":
                fields = dict(zip(parts[2::2], parts[3::2]))
                label = parts[1]
                m = re.search(r"clips=(\d+)", label)
                cur = {
                    "label": re.sub(r":?clips=\d+", "", label),
                    "clips": int(m.group(1)) if m else 1,
                    "span": int(fields.get("span_ns", 0)),
                    "busy": int(fields.get("busy_ns", 0)),
                    "broken": "BROKEN-RECORDS" in line,
                    "kernels": [],
                    "copies": [],
                }
            elif cur is None:
                continue
            elif parts[0] == "kernel":
                cur["kernels"].append((int(parts[1]), int(parts[2]), parts[3]))
            elif parts[0] in ("memcpy", "memset"):
                name = parts[4] if len(parts) > 4 else "memset"
                cur["copies"].append((int(parts[1]), int(parts[2]), int(parts[3]), name))
            elif parts[0] == "end":
                ranges.append(cur)
                cur = None
    return ranges


def short(name: str, width: int = 90) -> str:
    name = re.sub(r"\s+", " ", name)
    return name if len(name) <= width else name[: width - 1] + "…"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("profile")
    p.add_argument("--top", type=int, default=12, help="heaviest kernels listed per range")
    args = p.parse_args(argv)
    ranges = read(args.profile)
    if not ranges:
        print(f"error: no profile ranges in {args.profile}", file=sys.stderr)
        return 1
    print("| range | GPU busy, ms/clip | busy / span | kernels/clip | "
          + " | ".join(COLUMNS) + " |")
    print("|---|---|---|---|" + "---|" * len(COLUMNS))
    for r in ranges:
        by = dict.fromkeys(COLUMNS, 0)
        for _, total, name in r["kernels"]:
            by[kind_of(name)] += total
        by["copies"] = sum(c[1] for c in r["copies"])
        total = sum(by.values()) or 1
        n = sum(c for c, _, _ in r["kernels"])
        flag = " (records broken)" if r["broken"] else ""
        print(f"| {r['label']}{flag} | {r['busy'] / 1e6 / r['clips']:.3f} | "
              f"{r['busy'] / max(r['span'], 1):.0%} | {n / r['clips']:.0f} | "
              + " | ".join(f"{by[c] / total:.0%}" for c in COLUMNS) + " |")
    for r in ranges:
        print(f"\n{r['label']}: heaviest kernels (ms per clip, launches per clip, kind)")
        for count, total, name in r["kernels"][: args.top]:
            print(f"  {total / 1e6 / r['clips']:7.3f}  {count / r['clips']:6.1f}  "
                  f"{kind_of(name):11s} {short(name)}")
        for count, total, size, name in r["copies"]:
            print(f"  {total / 1e6 / r['clips']:7.3f}  {count / r['clips']:6.1f}  "
                  f"{'copy ' + name:11s} {size / r['clips'] / 2**20:.2f} MiB per clip")
    return 0


if __name__ == "__main__":
    sys.exit(main())
