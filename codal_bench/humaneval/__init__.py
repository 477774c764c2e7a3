"""The HumanEval+ wing: task loading, prompts, code extraction, expected outputs, the sandbox child,
verdicts and pass@k scores. It runs candidates in the generic sandbox of `codal_bench.executors`."""
