"""Keisei: a Shogi agent trained by self-play PPO."""
