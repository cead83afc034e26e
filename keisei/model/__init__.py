"""The actor-critic network, and the precision it computes in."""

from keisei.model.network import ActorCritic, Architecture, masked_logits, parameter_count
from keisei.model.precision import FLOAT32, Precision, choose_precision

__all__ = [
    "FLOAT32",
    "ActorCritic",
    "Architecture",
    "Precision",
    "choose_precision",
    "masked_logits",
    "parameter_count",
]
