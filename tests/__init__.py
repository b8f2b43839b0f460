"""The test suite (a regular package, so that a top-level `tests` package some dependency might install can never
shadow it; tests/test_dependencies.py checks that none does)."""
