"""Multi-run experiments: method comparisons over seeds, with confidence intervals."""
