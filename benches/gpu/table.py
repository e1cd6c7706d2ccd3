#!/usr/bin/env python3
"""One table from a GPU run: the throughput benchmark's JSON lines and torch_reference.py's.

    python3 benches/gpu/table.py BENCH.jsonl TORCH.jsonl

Engine rows: for each model and batch size, the engine's clips/s (clips in host memory: staging,
transfer, compute) beside PyTorch eager's best form (fp16, channels_last, input already on the
card) for the same architecture and weights, and their ratio. Element rows: N parallel pipelines
against the engine at the element's batch size. Live rows: clips expected, classified, dropped.
Standard library only.
"""

from __future__ import annotations

import json
import sys


def read(path: str) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows


def arch_of(model: str) -> str:
    for arch in ("c2d-r50-nl", "i3d-r50-nl", "c2d-r101-nl", "i3d-r101-nl"):
        if model.startswith(arch):
            return arch
    return model


def fmt(x, digits=1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    bench, torch_rows = read(argv[1]), read(argv[2])
    best: dict = {}
    for t in torch_rows:
        key = (t["arch"], t["batch"])
        if key not in best or t["clips_per_s"] > best[key]["clips_per_s"]:
            best[key] = t
    first = bench[0] if bench else {}
    t0 = next(iter(best.values()), {})
    print(f"card: {first.get('card')}; host: {first.get('machine')}; date: {first.get('date')}; "
          f"ONNX Runtime {first.get('ort')}; torch {t0.get('torch')}, CUDA {t0.get('cuda')}, "
          f"cuDNN {t0.get('cudnn')}")
    print()
    print("| model | batch | PyTorch eager best, clips/s (form) | engine, clips/s | engine / PyTorch"
          " | engine batch latency p50 / p99, ms | per batch: staging copy / compute, ms"
          " | GPU memory, MiB |")
    print("|---|---|---|---|---|---|---|---|")
    engine_rate: dict = {}
    for r in (r for r in bench if r["kind"] == "engine"):
        engine_rate[(r["model"], r["batch"])] = r["clips_per_s"]
        t = best.get((arch_of(r["model"]), r["batch"]))
        form = ""
        if t:
            form = f" ({t['form']}{'+sdpa' if t.get('sdpa') else ''})"
        ratio = r["clips_per_s"] / t["clips_per_s"] if t else None
        print(f"| {r['model']} | {r['batch']} | {fmt(t and t['clips_per_s'])}{form} | "
              f"{fmt(r['clips_per_s'])} | {fmt(ratio, 2)} | {fmt(r['batch_ms_p50'])} / "
              f"{fmt(r['batch_ms_p99'])} | {fmt(r.get('fill_ms'), 2)} / "
              f"{fmt(r.get('compute_ms'), 2)} | {r.get('gpu_mib') or '-'} |")
    print()
    print("| model | streams | element, clips/s | element / engine at its max-batch | latency last "
          "frame → result p50 / p99, ms | mean batch | engine busy | source alone, clips/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in (r for r in bench if r["kind"] == "element"):
        eng = engine_rate.get((r["model"], r.get("max_batch")))
        ratio = r["clips_per_s"] / eng if eng else None
        print(f"| {r['model']} | {r['streams']} | {fmt(r['clips_per_s'])} | {fmt(ratio, 2)} | "
              f"{fmt(r['latency_ms_p50'])} / {fmt(r['latency_ms_p99'])} | {fmt(r['mean_batch'], 2)}"
              f" | {fmt(100 * r['engine_busy'], 0)} % | {fmt(r['source_clips_per_s'])} |")
    live = [r for r in bench if r["kind"] == "live"]
    if live:
        print()
        print("| model | live streams × 30 fps | starts | seconds | clip every | clips expected | "
              "classified | dropped | latency p50 / p99, ms | mean batch |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in live:
            starts = "over one clip period" if r.get("staggered") else "all at once"
            print(f"| {r['model']} | {r['streams']} | {starts} | {fmt(r['seconds'], 0)} | "
                  f"{r['clip_stride']} frames | {r['expected']} | {r['clips']} | {r['dropped']} | "
                  f"{fmt(r['latency_ms_p50'])} / {fmt(r['latency_ms_p99'])} | "
                  f"{fmt(r['mean_batch'], 2)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
