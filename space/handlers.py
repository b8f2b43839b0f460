"""Event handlers of the Image and Metrics tabs: load lazily, predict, and turn every failure into a gr.Error."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from functools import wraps

import gradio as gr

from space import classifier, eval_results
from space.images import InputError, decode_image, guard_upload
from space.settings import NO_AUDIO_MODEL, NO_IMAGE_MODEL, NO_MODEL_ON_SPACE, Settings
from trainer.errors import UserError, scrub, scrub_artifact

log = logging.getLogger("timm_space.app")
DEFAULT_TOP_K = 5


def user_error(e: Exception) -> gr.Error:
    """A gr.Error for the user: our own messages as they are, anything else named by type (no traceback)."""
    if isinstance(e, InputError | UserError):
        text = str(e)
    else:
        log.exception("unexpected error in a request")
        text = f"Unexpected error ({type(e).__name__}: {e}). The app is still running; try another input."
    # gr.Error renders its message as HTML in the browser; file names come from users, so escape them. A Space's
    # own HF_TOKEN (for a private model) must never reach a caller, even inside a server's error text.
    return gr.Error(html.escape(scrub(text), quote=False), print_exception=False)


def as_gr_error(fn: Callable) -> Callable:
    """Decorator: re-raise every exception of an event handler as a clear gr.Error (the server keeps serving)."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:  # every failure becomes a message; none may take the server down
            raise user_error(e) from None

    return wrapper


def _top(probs: dict[str, float], k) -> dict[str, float]:
    """The k most probable labels (k clamped to 1…number of classes); a k that is not a number is an InputError."""
    if k is None or k == "":
        k = DEFAULT_TOP_K
    try:
        k = int(float(k)) if not isinstance(k, bool) else None
    except (TypeError, ValueError, OverflowError):  # "abc", [1], NaN, inf: from raw API callers
        k = None
    if k is None:
        raise InputError("top_k must be a whole number from 1 to the number of classes.")
    k = max(1, min(k, len(probs)))
    return dict(sorted(probs.items(), key=lambda kv: -kv[1])[:k])


def pin_warning(choice) -> str:
    """On a Space, a Hub model without a revision follows whatever is pushed next: say so in the status line."""
    ref = choice.ref or ""
    if ref.startswith("hf-hub:") and "@" not in ref:
        return (f" ⚠️ {choice.source} is not pinned to a revision: every restart serves whatever was pushed last. "
                "Pin it: hf-hub:org/name@<commit sha> (for MODEL_ID also MODEL_REVISION).")
    return ""


class Handlers:
    """The app's event functions for one Settings (which checkpoints to serve)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _ref(self, which: str) -> str:
        """The configured reference for 'image' or 'audio', or UserError saying how to configure one."""
        choice = self.settings.audio if which == "audio" else self.settings.image
        if choice.ref is None and self.settings.on_space:
            var = "AUDIO_MODEL_ID" if which == "audio" else "MODEL_ID"
            raise UserError(NO_MODEL_ON_SPACE.format(kind=which, var=var))
        if choice.ref is None:
            raise UserError(NO_AUDIO_MODEL if which == "audio" else NO_IMAGE_MODEL)
        return choice.ref

    def image_status(self):
        """On page load: load the image model (once per process) → status line, example gallery, top-k range."""
        try:
            clf = classifier.load_classifier(self._ref("image"), "image")
        except Exception as e:  # shown in the tab; the page itself must load
            return f"⚠️ {user_error(e).message}", [], gr.update()
        ev = eval_results.read_eval(clf.path)
        items = eval_results.example_items(eval_results.served_samples(clf.path), ev.get("samples", {}))
        status = f"✅ `{clf.ref}` ({self.settings.image.source}): {classifier.describe(clf)}"
        if self.settings.on_space:
            status += pin_warning(self.settings.image)
        return status, items, gr.update(maximum=len(clf.labels), value=min(DEFAULT_TOP_K, len(clf.labels)))

    @as_gr_error
    def predict_image(self, image, top_k: float = DEFAULT_TOP_K) -> tuple[dict[str, float], str]:
        """One upload → ({label: calibrated probability} for the top k, timing and conversion notes)."""
        if image is None:  # the input was cleared: nothing to say, no error toast
            return {}, ""
        guard_upload(image)
        start = time.perf_counter()
        clf = classifier.load_classifier(self._ref("image"), "image")
        rgb, notes = decode_image(image)
        (probs,), model_ms = clf.predict_images([rgb])
        total_ms = 1000 * (time.perf_counter() - start)
        info = f"model {model_ms:.1f} ms (preprocess + forward) · {total_ms:.1f} ms with decoding"
        return _top(probs, top_k), info + "".join(f"\n- {n}" for n in notes)

    def predict_image_batch(self, images: list, top_ks: list) -> tuple[list, list]:
        """Batched API: gradio groups concurrent requests; one forward pass; a bad upload fails only itself."""
        try:
            clf = classifier.load_classifier(self._ref("image"), "image")
        except Exception as e:
            message = user_error(e).message
            return [{} for _ in images], [message for _ in images]
        decoded, messages = [], []
        for image in images:
            try:
                guard_upload(image)
                decoded.append(decode_image(image)[0])
                messages.append("")
            except Exception as e:  # reported for this request only: it must not fail the others in the batch
                decoded.append(None)
                messages.append(user_error(e).message)
        good = [im for im in decoded if im is not None]
        probs = iter(clf.predict_images(good)[0] if good else [])
        labels = []
        for i, (im, k) in enumerate(zip(decoded, top_ks, strict=True)):
            p = next(probs) if im is not None else None
            try:  # a bad top_k fails its own item only
                labels.append(_top(p, k) if p is not None else {})
            except InputError as e:
                labels.append({})
                messages[i] = user_error(e).message
        return labels, messages

    def pick_example(self, evt: gr.SelectData) -> str | None:
        """The file of the example clicked in the gallery (it then flows into the image input)."""
        clf = classifier.load_classifier(self._ref("image"), "image")
        ev = eval_results.read_eval(clf.path)
        items = eval_results.example_items(eval_results.served_samples(clf.path), ev.get("samples", {}))
        return items[evt.index][0] if 0 <= evt.index < len(items) else None

    def _eval(self, which: str):
        """(ref, local dir, config, eval artifacts) of the image or audio checkpoint — no model load."""
        ref = self._ref(which)
        path, config = classifier.checkpoint(ref)
        return ref, path, config, eval_results.read_eval(path)

    @as_gr_error
    def metrics_json(self, which: str = "image") -> dict:
        """eval/metrics.json of the served checkpoint, as written by the trainer."""
        _ref, _path, _config, ev = self._eval(which)
        if "metrics" not in ev:
            raise UserError("this checkpoint has no eval/metrics.json (was it written by trainer/train.py?).")
        return scrub_artifact(ev["metrics"])  # a checkpoint from someone else's repo may quote anything

    def metrics_view(self, which: str = "image") -> tuple:
        """Everything the Validation-metrics tab shows, read from eval/ (errors become the summary text)."""
        try:
            ref, path, config, ev = self._eval(which)
        except Exception as e:  # the tab shows why; the page stays up
            empty = pd_empty()
            return (f"⚠️ {user_error(e).message}", empty, None, empty, empty, None, "", [],
                    gr.update(choices=[], value=None), [], empty)
        split, headline = eval_results.primary(ev)
        confusion, samples = ev.get("confusion_matrix"), ev.get("samples", {})
        root = eval_results.served_samples(path)
        choices = eval_results.cell_choices(samples, confusion) if confusion else []
        first = choices[0][1] if choices else None
        return (eval_results.summary_markdown(ref, config, ev),
                eval_results.headline_frame(ev.get("metrics", {})),
                eval_results.confusion_figure(confusion, normalize=False) if confusion else None,
                eval_results.per_class_frame(ev.get("per_class", {})),
                eval_results.confused_pairs(confusion) if confusion else pd_empty(),
                eval_results.reliability_plot(ev["reliability"]) if "reliability" in ev else None,
                eval_results.calibration_markdown(headline) + f" (split: {split})",
                eval_results.top_loss_items(root, samples),
                gr.update(choices=choices, value=first),
                eval_results.cell_items(root, samples, first),
                eval_results.history_frame(ev.get("history", [])))

    @as_gr_error
    def confusion_plot(self, which: str, normalize: bool):
        """The confusion matrix as counts or row-normalised."""
        _ref, _path, _config, ev = self._eval(which)
        if "confusion_matrix" not in ev:
            raise UserError("this checkpoint has no eval/confusion_matrix.json.")
        return eval_results.confusion_figure(ev["confusion_matrix"], normalize=bool(normalize))

    @as_gr_error
    def cell_gallery(self, which: str, key: str | None) -> list:
        """Thumbnails of the samples in one confused (true → predicted) cell."""
        _ref, path, _config, ev = self._eval(which)
        return eval_results.cell_items(eval_results.served_samples(path), ev.get("samples", {}), key)

    def pick_pair(self, which: str, evt: gr.SelectData):
        """A click on a most-confused row selects that (true → predicted) cell in the dropdown."""
        _ref, _path, _config, ev = self._eval(which)
        row = evt.row_value or []
        key = eval_results.pair_key(ev["confusion_matrix"], row[0], row[1]) if len(row) >= 2 else None
        return gr.update(value=key) if key in ev.get("samples", {}).get("cells", {}) else gr.update()


def pd_empty():
    """An empty table (pandas is imported by space.eval_results anyway)."""
    return eval_results.pd.DataFrame()
