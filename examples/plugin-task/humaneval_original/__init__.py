"""A codal-eval task plugin: HumanEval with OpenAI's original `check(candidate)` tests.

It registers a task and a judge through entry points (see pyproject.toml) and changes nothing in
codal-eval: the run summary, leaderboard, `check`, `diff` and `export` learn its metric from the
task's scoring face (`HumanEvalOriginalTask.scoring`).
"""
