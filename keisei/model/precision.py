"""The precision the network computes in: float32, or bfloat16 / float16 mixed precision.

Mixed precision here is autocast (as torchtune and Lightning do it): the weights stay float32
(checkpoints do not change), convolutions and matrix products run in the low precision, and the
network's outputs come back as float32, so everything after them (masking with -inf, softmax,
log-probabilities, entropy, losses, GAE, the optimizer's state) is float32. The same setting
serves the PPO update and every batched inference (self-play, past opponents, evaluation, the
search, `keisei usi`), so the probabilities an update starts from are those the games sampled.

`auto` picks bfloat16 where the device runs it fast: a CUDA device with bf16 support, or a CPU
with AMX or AVX-512 BF16 units (read from torch's cpuinfo, `torch.cpu.get_capabilities()`);
float32 elsewhere. `bf16` asks for it anywhere (on a CPU without those units it is emulated and
slow, and the log says so); `fp16` needs CUDA (it needs a gradient scaler and CPUs gain nothing).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import torch

PrecisionSetting = Literal["auto", "off", "bf16", "fp16"]
PRECISION_SETTINGS: tuple[str, ...] = ("auto", "off", "bf16", "fp16")

_BF16_CPU_UNITS = ("amx_bf16", "avx512_bf16")
"""cpuinfo's names for the CPU units that run bfloat16 products natively."""


@dataclass(frozen=True)
class Precision:
    """What the network computes in on one device, and why it was chosen."""

    dtype: torch.dtype | None
    """The autocast dtype; None computes in float32."""
    reason: str

    @property
    def name(self) -> str:
        return {None: "float32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self, device: torch.device | str) -> AbstractContextManager[Any]:
        """Autocast to this precision on `device`'s type (nothing for float32)."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=torch.device(device).type, dtype=self.dtype)


FLOAT32 = Precision(None, "float32 asked for")


def cpu_capabilities() -> dict[str, Any]:
    """What torch's cpuinfo reports about this CPU (the one place the hardware is read)."""
    return dict(torch.cpu.get_capabilities())


def cpu_bf16_units() -> list[str]:
    """The bfloat16 units this CPU has, by cpuinfo's names (empty: none)."""
    capabilities = cpu_capabilities()
    return [unit for unit in _BF16_CPU_UNITS if capabilities.get(unit)]


def _cuda_bf16(device: torch.device) -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def choose_precision(setting: str, device: torch.device | str) -> Precision:
    """The precision for `setting` (`ppo.amp`: auto, off, bf16, fp16) on `device`.

    Raises ValueError for an unknown setting. `fp16` on a device other than CUDA falls back to
    float32 (the reason says so)."""
    device = torch.device(device)
    if setting not in PRECISION_SETTINGS:
        raise ValueError(f"unknown precision {setting!r}; expected one of {PRECISION_SETTINGS}")
    if setting == "off":
        return FLOAT32
    if device.type == "cuda":
        bf16 = _cuda_bf16(device)
        if setting == "fp16":
            return Precision(torch.float16, "fp16 asked for")
        if setting == "bf16":
            return Precision(torch.bfloat16, "bf16 asked for")
        if bf16:
            return Precision(torch.bfloat16, "auto: this CUDA device supports bf16")
        return Precision(None, "auto: this CUDA device has no bf16 support")
    if device.type != "cpu":
        if setting == "auto":
            return Precision(None, f"auto: float32 on {device.type}")
        if setting == "fp16":
            return Precision(None, f"fp16 needs a CUDA device; float32 on {device.type}")
        return Precision(torch.bfloat16, "bf16 asked for")
    units = cpu_bf16_units()
    if setting == "fp16":
        return Precision(None, "fp16 needs a CUDA device; float32 on the CPU")
    if setting == "bf16":
        if units:
            return Precision(torch.bfloat16, f"bf16 asked for; this CPU has {', '.join(units)}")
        return Precision(
            torch.bfloat16,
            "bf16 asked for, but this CPU has neither AMX nor AVX-512 BF16: it is emulated and "
            "likely slower than float32",
        )
    if units:
        return Precision(torch.bfloat16, f"auto: this CPU has {', '.join(units)}")
    return Precision(None, "auto: this CPU has neither AMX nor AVX-512 BF16")


def allow_tf32(device: torch.device | str) -> None:
    """On CUDA, let float32 matrix products and convolutions use TF32 tensor cores (what stays
    float32 under autocast, and all of it with `off`); nothing elsewhere."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
