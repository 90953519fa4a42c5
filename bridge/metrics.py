"""Prometheus metrics of one Hearth process (its own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gate_calls = Counter(
            "hearth_gate_calls", "Gate callbacks answered", ["callback", "outcome"], registry=self.registry
        )
        self.gate_seconds = Histogram(
            "hearth_gate_seconds",
            "Time to answer a gate callback",
            ["callback"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.stage_seconds = Histogram(
            "hearth_screening_stage_seconds",
            "Time per pipeline stage",
            ["stage"],
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.verdicts = Counter(
            "hearth_verdicts", "Dispositions decided", ["where", "disposition"], registry=self.registry
        )
        self.gate_fallbacks = Counter(
            "hearth_gate_fallbacks",
            "Messages the gate let through unscreened, to re-screen after delivery",
            ["reason"],
            registry=self.registry,
        )
        self.events_handled = Counter(
            "hearth_bot_events",
            "Timeline events handed to the bot's handlers",
            ["type"],
            registry=self.registry,
        )
