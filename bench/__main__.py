"""`python -m bench`: run every benchmark module that exists in this checkout, in order."""

from __future__ import annotations

import importlib

# Each module exposes main() -> None and prints its own table.
BENCHMARKS = ["bench.app", "bench.release", "bench.flux"]


def main() -> None:
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise  # the benchmark exists but one of its imports is missing: that is a real error
            print(f"{name}: not present in this checkout, skipped")
            continue
        print(f"== {name}")
        module.main()


if __name__ == "__main__":
    main()
