"""Cost of embedding messages with all-MiniLM-L6-v2: torch against ONNX Runtime (fp32), same run.

    flock /tmp/hearth-bench.lock .venv/bin/python bench/minilm.py [--rounds 5] [--messages 240]

(``flock`` keeps two timing runs on this shared machine from overlapping.)

Every message Hearth screens is embedded once by MiniLM for the offline toxicity scorer's head (with
no Detoxify checkpoint configured; the support model is a separate, fine-tuned copy). On a busy server messages arrive a few at a time, so this measures
batches of 1, 3 and 8 messages: wall time and the process's CPU time per message, for
``MiniLM(runtime="torch")`` (the baseline) and ``MiniLM(runtime="onnx")`` (Hearth's default), taking
turns round after round since this machine's cores are shared. CPU time matters as much as wall time
here: whatever Hearth spends is taken from Synapse on the same cores. It also checks that both give
the same embeddings. Texts are new to each call (numbered), so the embedding cache never answers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moderation.detectors.minilm import MiniLM  # noqa: E402

SAMPLES = (
    "I've been feeling really anxious about work this week, anyone else?",
    "thank you all for listening tonight",
    "my therapist suggested writing things down before bed and it kind of helps",
    "ok",
    "Some days are better than others. Today was one of the harder ones but I got out for a walk.",
)


def texts(n: int, start: int) -> list[str]:
    return [f"{SAMPLES[(start + i) % len(SAMPLES)]} ({start + i})" for i in range(n)]


def measure(model: MiniLM, batch: int, messages: int, start: int) -> tuple[float, float]:
    """Milliseconds of wall and CPU time per message, embedding ``messages`` in batches of ``batch``."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(0, messages, batch):
        model.embed(texts(batch, start + i))
    n = (messages // batch) * batch or batch
    return (time.perf_counter() - wall0) * 1000 / n, (time.process_time() - cpu0) * 1000 / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=240, help="messages per path, batch size and round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hearth-minilm-bench-") as tmp:
        t0 = time.perf_counter()
        torch_path = MiniLM(runtime="torch")
        print(f"torch load: {time.perf_counter() - t0:.1f}s")
        t0 = time.perf_counter()
        onnx_path = MiniLM(runtime="onnx", cache_dir=tmp)
        print(f"ONNX export, check against torch, load: {time.perf_counter() - t0:.1f}s ({onnx_path.engine})")
        if onnx_path.runtime != "onnx":
            raise SystemExit(f"ONNX Runtime path failed: {onnx_path.runtime_error}")
        probe = texts(64, 10**6)
        diff = float(np.max(np.abs(torch_path.embed(probe) - onnx_path.embed(probe))))
        print(f"largest embedding difference, torch vs ONNX, 64 texts: {diff:.2g}")
        paths = {"torch": torch_path, "onnx": onnx_path}
        for model in paths.values():
            measure(model, 3, 30, 0)  # warm-up
        results: dict[tuple[str, int], list[tuple[float, float]]] = {}
        counter = 10**7
        for _ in range(args.rounds):
            for batch in (1, 3, 8):
                for name, model in paths.items():
                    results.setdefault((name, batch), []).append(measure(model, batch, args.messages, counter))
                    counter += args.messages
        print(f"\nper message, median of {args.rounds} rounds ({args.messages} messages each):")
        print(f"{'batch':>5}  {'torch wall':>10} {'torch CPU':>10}  {'onnx wall':>10} {'onnx CPU':>10}  "
              f"{'wall ratio':>10} {'CPU ratio':>10}")
        for batch in (1, 3, 8):
            tw, tc = (statistics.median(x[k] for x in results[("torch", batch)]) for k in (0, 1))
            ow, oc = (statistics.median(x[k] for x in results[("onnx", batch)]) for k in (0, 1))
            print(f"{batch:>5}  {tw:>8.2f}ms {tc:>8.2f}ms  {ow:>8.2f}ms {oc:>8.2f}ms  "
                  f"{tw / ow:>9.2f}x {tc / oc:>9.2f}x")
        print("(ratio = torch / ONNX: above 1 means ONNX Runtime costs less)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
