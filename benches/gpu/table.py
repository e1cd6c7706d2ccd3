#!/usr/bin/env python3
"""Tables from a GPU run: the throughput benchmark's JSON lines and torch_reference.py's.

    python3 benches/gpu/table.py BENCH.jsonl TORCH.jsonl
    python3 benches/gpu/table.py --compile BENCH.jsonl TORCH.jsonl [--card CARD.csv]

Default: engine rows: for each model and batch size, the engine's clips/s (clips in host memory:
staging, transfer, compute) beside PyTorch eager's best form (fp16, channels_last, input already
on the card) for the same architecture and weights, and their ratio. Element rows: N parallel
pipelines against the engine at the element's batch size. Live rows: clips expected, classified,
dropped.

--compile (`benches/gpu/run.sh compile`): one table per batch size holding, for each network,
the engine, every PyTorch eager form and every torch.compile mode measured, with clips/s, the
time per batch (1000 · batch / clips/s), the engine's rate over each row's, the compile (or
first-call) time, and how each PyTorch form's scores agreed with ONNX Runtime's on the same
clips; configurations that were skipped, failed or cut by the time box are listed as such. Under
each table: the engine against the best compiled and the best eager form. CARD.csv: nvidia-smi
--query-gpu=… --format=csv output for the header.
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
    if len(argv) > 1 and argv[1] == "--compile":
        return compile_main(argv[2:])
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    bench, torch_rows = read(argv[1]), read(argv[2])
    best: dict = {}
    for t in torch_rows:
        if t.get("mode", "eager") != "eager" or "clips_per_s" not in t:
            continue
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


# ================================================================================================
# --compile: engine, eager and torch.compile side by side, one table per batch size
# ================================================================================================
MODE_ORDER = ("eager", "default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")


def torch_label(t: dict) -> str:
    """`PyTorch eager, 2d+sdpa` / `torch.compile max-autotune, 2d+sdpa [knob=value]`."""
    form = f"{t['form']}{'+sdpa' if t.get('sdpa') else ''}"
    mode = t.get("mode", "eager")
    if mode == "eager":
        return f"PyTorch eager, {form}"
    knobs = t.get("inductor") or {}
    extra = f" [{', '.join(f'{k}={v}' for k, v in sorted(knobs.items()))}]" if knobs else ""
    if t.get("cudagraph_skips"):  # inductor fell back to plain launches for this graph
        extra += " (CUDA graphs skipped)"
    return f"torch.compile {mode}, {form}{extra}"


def check_cell(t: dict) -> str:
    c = t.get("check")
    if not c:
        return "not checked"
    verdict = "" if "ok" not in c else (" ok" if c["ok"] else " **FAIL**")
    tol = f" (tolerance {c['tol']:g})" if "tol" in c else ""
    return (f"max rel diff {c['max_rel']:.2g}, top-1 {c['top1_agree']}/{c['n']}"
            f"{verdict}{tol}")


def status_cell(t: dict) -> str | None:
    """What happened to a configuration that has no rate."""
    if "skipped" in t:
        return f"skipped: {t['skipped']}"
    if "error" in t:
        return f"failed: {t['error']}"
    return None


def read_card(path: str | None) -> str | None:
    """`name, driver …` from nvidia-smi --format=csv output (header line, then one per card)."""
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    if len(lines) < 2 or not lines[0].startswith("name"):  # not nvidia-smi's (e.g. its error)
        return None
    keys = [k.strip() for k in lines[0].split(",")]
    cards = []
    for line in lines[1:]:
        values = [v.strip() for v in line.split(",")]
        if len(values) == len(keys):
            cards.append("; ".join(f"{k} {v}" for k, v in zip(keys, values)))
    return " | ".join(cards) or None


def _date_span(dates: list[str]) -> str:
    dates = sorted(d for d in dates if d)
    if not dates:
        return "-"
    return dates[0] if dates[0] == dates[-1] else f"{dates[0]} – {dates[-1]}"


def compile_tables(bench: list[dict], torch_rows: list[dict], card: str | None = None) -> str:
    """The --compile report as Markdown."""
    engines = [r for r in bench if r.get("kind") == "engine"]
    out = []
    first = engines[0] if engines else {}
    t0 = next((t for t in torch_rows if "torch" in t), {})
    triton = next((t.get("triton") for t in torch_rows if t.get("triton")), None)
    out.append(f"card: {card or first.get('card') or t0.get('gpu')}")
    options = f", options {first['cuda_options']}" if first.get("cuda_options") else ""
    out.append(f"host: {first.get('machine', '-')}; engine: ONNX Runtime {first.get('ort', '-')} "
               f"CUDA provider{options}; "
               f"PyTorch {t0.get('torch', '-')} (CUDA {t0.get('cuda', '-')}, cuDNN "
               f"{t0.get('cudnn', '-')}){', Triton ' + triton if triton else ''}")
    out.append(f"engine measured {_date_span([r.get('date', '') for r in engines])}; PyTorch "
               f"{_date_span([t.get('date', '') for t in torch_rows])}")
    out.append("")
    out.append("The engine is fed uint8 clips from host memory (staging copy, upload, "
               "normalisation and compute in every batch); PyTorch's input is already on the "
               "card, normalised, float16 channels_last. \"ms per batch\": 1000 · batch ÷ "
               "clips/s (with the engine's two lanes, two batches are in flight at once). "
               "\"engine ÷ this\": the network's first engine row over this row. \"compile, "
               "s\": the first call (tracing, code generation, autotuning; for eager, cuDNN's "
               "algorithm search), not timed.")
    archs: list[str] = []
    for a in [arch_of(r["model"]) for r in engines] + [t["arch"] for t in torch_rows]:
        if a not in archs:
            archs.append(a)
    batches = sorted({r["batch"] for r in engines} | {t["batch"] for t in torch_rows})
    for b in batches:
        out.append("")
        out.append(f"### Batch {b}")
        out.append("")
        out.append("| network | runs | clips/s | ms per batch | engine ÷ this | compile, s | "
                   "scores against ONNX Runtime |")
        out.append("|---|---|---|---|---|---|---|")
        notes = []
        for arch in archs:
            eng = [r for r in engines if arch_of(r["model"]) == arch and r["batch"] == b]
            ref = eng[0]["clips_per_s"] if eng else None
            for r in eng:
                rate = r["clips_per_s"]
                out.append(f"| {arch} | engine, {r['model']} | {fmt(rate)} | "
                           f"{fmt(1000.0 * b / rate, 2)} | {fmt(ref / rate, 2)} | - | - |")
            rows = [t for t in torch_rows if t["arch"] == arch and t["batch"] == b]
            rows.sort(key=lambda t: (MODE_ORDER.index(t.get("mode", "eager"))
                                     if t.get("mode", "eager") in MODE_ORDER else len(MODE_ORDER)))
            for t in rows:
                status = status_cell(t)
                if status:
                    out.append(f"| {arch} | {torch_label(t)} | {status} | - | - | - | - |")
                    continue
                rate = t["clips_per_s"]
                first_s = t.get("compile_s", t.get("first_call_s"))
                out.append(f"| {arch} | {torch_label(t)} | {fmt(rate)} | "
                           f"{fmt(t['ms_per_batch'], 2)} | {fmt(ref and ref / rate, 2)} | "
                           f"{fmt(first_s)} | {check_cell(t)} |")
            timed = [t for t in rows if "clips_per_s" in t]
            compiled = [t for t in timed if t.get("mode", "eager") != "eager"]
            eager = [t for t in timed if t.get("mode", "eager") == "eager"]
            # Every engine row against the best of each kind (the first row first).
            for r in eng:
                parts = []
                for what, group in (("the best compiled form", compiled),
                                    ("the best eager form", eager)):
                    if group:
                        top = max(group, key=lambda t: t["clips_per_s"])
                        parts.append(f"{fmt(r['clips_per_s'] / top['clips_per_s'], 2)}× {what} "
                                     f"({torch_label(top)}, {fmt(top['clips_per_s'])} clips/s)")
                if parts:
                    notes.append(f"- {arch}, batch {b}: the engine ({r['model']}, "
                                 f"{fmt(r['clips_per_s'])} clips/s) makes " + "; ".join(parts))
        if notes:
            out.append("")
            out.extend(notes)
    return "\n".join(out) + "\n"


def compile_main(args: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="table.py --compile",
                                description="engine, eager and torch.compile, per batch size")
    p.add_argument("bench", metavar="BENCH.jsonl")
    p.add_argument("torch", metavar="TORCH.jsonl")
    p.add_argument("--card", default=None, metavar="CARD.csv",
                   help="nvidia-smi --query-gpu=… --format=csv output for the header")
    p.add_argument("--engines", default=None, metavar="MODEL[,MODEL…]",
                   help="engine rows to show (default all; the first of a network is the one "
                        "every row of that network is compared with)")
    a = p.parse_args(args)
    try:
        bench, torch_rows = read(a.bench), read(a.torch)
        card = read_card(a.card)
    except OSError as e:
        print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 1
    except json.JSONDecodeError as e:
        print(f"error: a line is not JSON ({e})", file=sys.stderr)
        return 1
    if a.engines:
        keep = [m.strip() for m in a.engines.split(",") if m.strip()]
        bench = [r for r in bench if r.get("kind") != "engine" or r.get("model") in keep]
        bench.sort(key=lambda r: keep.index(r["model"]) if r.get("model") in keep else len(keep))
    sys.stdout.write(compile_tables(bench, torch_rows, card))
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv))
