"""The nouns of Frugal: jobs, completions, usage, table rows, dead letters and config."""
