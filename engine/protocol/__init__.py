"""The evaluation protocol (docs/design.md §6): open and candidate-shown generation, multiple choice by
option log-likelihood and by letter, the gold trace, and recovery probes, batch by batch."""

from engine.protocol.evaluate import evaluate_batch, evaluate_batches, plan_batches
from engine.protocol.manifest import protocol_manifest

__all__ = ["evaluate_batch", "evaluate_batches", "plan_batches", "protocol_manifest"]
