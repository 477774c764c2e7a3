"""`python -m codal_bench` is `codal-eval` (useful where the console script is not on PATH)."""

from .cli import main

if __name__ == "__main__":
    main()
