"""The actor-critic network."""

from keisei.model.network import ActorCritic, Architecture, masked_logits, parameter_count

__all__ = ["ActorCritic", "Architecture", "masked_logits", "parameter_count"]
