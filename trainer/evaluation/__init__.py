"""Evaluation: predictions across processes, our local evaluate modules, calibration, plots."""
