"""codal-eval: evaluate code LLMs on CODAL-Bench and HumanEval+."""

__version__ = "0.1.0"
