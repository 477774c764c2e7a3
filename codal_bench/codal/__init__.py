"""The CODAL-Bench wing: task loading, candidate prompts, the LLM judge and its templates, rating
parsing, scores and the judge report. Nothing outside this package knows what a preference is."""
