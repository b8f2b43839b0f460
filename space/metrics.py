"""Event handlers of the Validation-metrics tab: everything is read from the checkpoint's eval/ artifacts."""

from __future__ import annotations

import gradio as gr

from space import eval_results, multilabel_results
from space.handlers import Handlers, as_gr_error, pd_empty, user_error
from trainer.checkpoint.contract import MULTI_LABEL
from trainer.errors import UserError, scrub_artifact

VIEW_SIZE = 15  # outputs of metrics_view (space/ui.py wires them in this order)


class MetricsHandlers:
    """The metrics tab's events for the checkpoints a Handlers serves."""

    def __init__(self, handlers: Handlers) -> None:
        self.handlers = handlers

    def _eval(self, which: str):
        """(ref, local dir, config, eval artifacts) of the image or audio checkpoint — no model load."""
        return self.handlers.eval_artifacts(which)

    @as_gr_error
    def metrics_json(self, which: str = "image") -> dict:
        """eval/metrics.json of the served checkpoint, as written by the trainer."""
        _ref, _path, _config, ev = self._eval(which)
        if "metrics" not in ev:
            raise UserError("this checkpoint has no eval/metrics.json (was it written by trainer/train.py?).")
        return scrub_artifact(ev["metrics"])  # a checkpoint from someone else's repo may quote anything

    def metrics_view(self, which: str = "image") -> tuple:
        """Everything the tab shows, in space/ui.py's order (an error becomes the status line)."""
        try:
            ref, path, config, ev = self._eval(which)
        except Exception as e:  # the tab shows why; the page stays up
            empty = pd_empty()
            return (f"⚠️ {user_error(e).message}", empty, empty, empty, empty, empty,
                    gr.update(choices=[], value=None), "", [], [], [], "", None, "", empty)
        split, headline = eval_results.primary(ev)
        if config.get("task") == MULTI_LABEL:
            return self._multi_label_view(ref, path, config, ev)
        confusion, samples = ev.get("confusion_matrix"), ev.get("samples", {})
        root = eval_results.served_samples(path)
        choices = eval_results.cell_choices(samples, confusion) if confusion else []
        first = choices[0][1] if choices else None
        preflight = ev.get("preflight")
        status = scrub_artifact(f"✅ `{ref}`: evaluated on the **{split}** split.")
        if preflight and preflight.get("leakage"):
            status += " ⚠️ **The data preflight found leakage between splits: see Data.**"
        return (status,
                eval_results.summary_frame(ref, config, ev),
                eval_results.headline_frame(ev.get("metrics", {})),
                eval_results.per_class_frame(ev.get("per_class", {})),
                eval_results.confusion_frame(confusion) if confusion else pd_empty(),
                eval_results.confused_pairs(confusion) if confusion else pd_empty(),
                gr.update(choices=choices, value=first),
                eval_results.cell_note(confusion, samples, first) if confusion else "",
                eval_results.cell_items(root, samples, first),
                eval_results.top_loss_items(root, samples),
                eval_results.explain_items(root, samples),
                eval_results.calibration_markdown(headline) + f" (split: {split})",
                eval_results.reliability_plot(ev["reliability"]) if "reliability" in ev else None,
                eval_results.preflight_markdown(preflight),
                eval_results.history_frame(ev.get("history", [])))

    def _multi_label_view(self, ref: str, path, config: dict, ev: dict) -> tuple:
        """metrics_view of a multi-label checkpoint: per-class table with AP and thresholds, per-class TP/FP/FN/TN
        where the matrix goes, no cells or confused pairs."""
        split, headline = eval_results.primary(ev)
        root = eval_results.served_samples(path)
        confusion = ev.get("multilabel_confusion")
        status = scrub_artifact(f"✅ `{ref}`: multi-label, evaluated on the **{split}** split.")
        return (status,
                eval_results.summary_frame(ref, config, ev),
                eval_results.headline_frame(ev.get("metrics", {})),
                eval_results.per_class_frame(ev.get("per_class", {})),
                gr.update(value=multilabel_results.per_class_confusion(confusion) if confusion else pd_empty(),
                          label="Per-class confusion at each class's threshold (one-vs-rest TP/FP/FN/TN)"),
                pd_empty(),
                gr.update(choices=[], value=None),
                multilabel_results.NOTE,
                [],
                eval_results.top_loss_items(root, ev.get("samples", {})),
                eval_results.explain_items(root, ev.get("samples", {})),
                eval_results.calibration_markdown(headline, multi_label=True) + f" (split: {split})",
                eval_results.reliability_plot(ev["reliability"], multi_label=True) if "reliability" in ev else None,
                eval_results.preflight_markdown(ev.get("preflight")),
                eval_results.history_frame(ev.get("history", [])))

    def _confusion(self, which: str) -> tuple:
        """(served dir, confusion matrix, samples index) or UserError for a checkpoint without a matrix."""
        _ref, path, config, ev = self._eval(which)
        if config.get("task") == MULTI_LABEL:
            raise UserError(multilabel_results.NOTE)
        if "confusion_matrix" not in ev:
            raise UserError("this checkpoint has no eval/confusion_matrix.json.")
        return path, ev["confusion_matrix"], ev.get("samples", {})

    @as_gr_error
    def confusion_table(self, which: str, normalize: str = "counts"):
        """The confusion matrix as a heat-map table: counts, or row (recall) or column (precision) shares
        (multi-label: the per-class counts, which carry their own precision and recall)."""
        _ref, _path, config, ev = self._eval(which)
        if config.get("task") == MULTI_LABEL and ev.get("multilabel_confusion"):
            return multilabel_results.per_class_confusion(ev["multilabel_confusion"])
        return eval_results.confusion_frame(self._confusion(which)[1], normalize)

    @as_gr_error
    def cell_gallery(self, which: str, key: str | None) -> list:
        """Thumbnails of the samples in one (true → predicted) cell."""
        path, _confusion, samples = self._confusion(which)
        return eval_results.cell_items(eval_results.served_samples(path), samples, key)

    @as_gr_error
    def cell_summary(self, which: str, key: str | None) -> str:
        """One line about a cell: count, share of its true class, thumbnails kept."""
        _path, confusion, samples = self._confusion(which)
        return eval_results.cell_note(confusion, samples, key)

    def _show_cell(self, which: str, key: str | None) -> tuple:
        """(dropdown update, thumbnails, note) for a cell picked by a click; cells without thumbnails still get
        their note, and the dropdown (which lists only cells with thumbnails) is cleared."""
        path, confusion, samples = self._confusion(which)
        kept = key in samples.get("cells", {})
        return (gr.update(value=key if kept else None),
                eval_results.cell_items(eval_results.served_samples(path), samples, key) if kept else [],
                eval_results.cell_note(confusion, samples, key))

    @as_gr_error
    def pick_cell(self, which: str, evt: gr.SelectData) -> tuple:
        """A click on matrix cell (row r, column c ≥ 1) shows the (true r → predicted c - 1) cell's samples."""
        if self._eval(which)[2].get("task") == MULTI_LABEL:  # the per-class table has no cells to open
            return gr.update(), [], multilabel_results.NOTE
        _path, confusion, _samples = self._confusion(which)
        index = evt.index if isinstance(evt.index, list | tuple) and len(evt.index) == 2 else None
        if index is None or not 1 <= int(index[1]) <= len(confusion["labels"]):
            return gr.update(), gr.update(), "Click a count, not a label, to see that cell's samples."
        return self._show_cell(which, f"{int(index[0])},{int(index[1]) - 1}")

    @as_gr_error
    def pick_pair(self, which: str, evt: gr.SelectData) -> tuple:
        """A click on a most-confused row shows that (true → predicted) cell's samples."""
        _path, confusion, _samples = self._confusion(which)
        row = evt.row_value or []
        key = eval_results.pair_key(confusion, row[0], row[1]) if len(row) >= 2 else None
        return self._show_cell(which, key) if key else (gr.update(), gr.update(), gr.update())
