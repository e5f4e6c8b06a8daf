"""The robustness suite (issue 12 §5); see harness.py and docs/robustness.md."""
