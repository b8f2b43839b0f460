"""The test suite (a regular package: an installed dependency, iterative-stratification, ships a top-level `tests`
package of its own that would otherwise shadow this one)."""
