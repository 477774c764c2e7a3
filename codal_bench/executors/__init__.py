"""Executors run untrusted programs under OS limits; callers decide what the outputs mean."""

from codal_bench.executors.sandbox import SandboxExecutor, SandboxLimits, SandboxUnavailable

__all__ = ["SandboxExecutor", "SandboxLimits", "SandboxUnavailable"]
