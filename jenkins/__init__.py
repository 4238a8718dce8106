"""The release module Jenkins runs: `python -m jenkins release|promote|rollback|unhold` (docs/release.md)."""
