"""Event handlers of the Image and Metrics tabs: load lazily, predict, and turn every failure into a gr.Error."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from functools import wraps

import gradio as gr

from space import classifier, eval_results
from space.image_uploads import InputError, decode_image, guard_upload, md_escape
from space.latency import Latency
from space.settings import NO_AUDIO_MODEL, NO_IMAGE_MODEL, NO_MODEL_ON_SPACE, Settings
from trainer.checkpoint.contract import MULTI_LABEL, SINGLE_LABEL
from trainer.checkpoint.quality import undertrained
from trainer.errors import UserError, scrub
from trainer.evaluation import explain
from trainer.evaluation.ood import UNKNOWN
from trainer.evaluation.tta import NUM_VIEWS, TTA_MODES

log = logging.getLogger("timm_space.app")
DEFAULT_TOP_K = 5
TOP_CLASS = "(top prediction)"  # the explain-class dropdown's first choice


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


def ood_line(known: dict) -> str:
    """The info line that opens a prediction when the input is out of distribution ('' otherwise)."""
    if known["known"] is not False:
        return ""
    return (f"⚠️ **{UNKNOWN}**: the out-of-distribution score {known['ood_score']:.2f} is over the threshold "
            f"{known['ood_threshold']:.2f} fitted on validation data; the top guesses are shown anyway.\n\n")


def ood_note(known: dict) -> str:
    """The info note with the out-of-distribution score (and its threshold when the checkpoint has one)."""
    if known["ood_threshold"] is None:
        return f"\n- out-of-distribution score {known['ood_score']:.2f} (no threshold in this checkpoint)"
    return f"\n- out-of-distribution score {known['ood_score']:.2f} (threshold {known['ood_threshold']:.2f})"


MARK = "✓ "  # multi-label: marks the labels at or over their threshold in the probability list


def label_view(clf, probs: dict[str, float], k) -> dict[str, float]:
    """What gr.Label shows: the k most probable labels; for a multi-label model also every label over its
    threshold, each of those marked ✓."""
    top = _top(probs, k)
    if not clf.multi_label:
        return top
    chosen = clf.chosen(probs)
    shown = {**{label: probs[label] for label in chosen}, **top}
    return {(MARK + label if label in chosen else label): p for label, p in shown.items()}


def chosen_line(clf, probs: dict[str, float]) -> str:
    """A multi-label prediction's opening line: the labels over their thresholds, or that none is ('' for a
    single-label model, whose answer is its top label)."""
    if not clf.multi_label:
        return ""
    thresholds = dict(zip(clf.labels, clf.thresholds, strict=True))
    chosen = clf.chosen(probs)
    if chosen:
        return ("**Labels over their thresholds:** " + ", ".join(
            f"{md_escape(label)} ({probs[label]:.2f} ≥ {thresholds[label]:.2f})" for label in chosen) + "\n\n")
    best = max(probs, key=probs.get)
    return (f"**No label over its threshold**: the most probable, {md_escape(best)}, has {probs[best]:.2f} "
            f"(threshold {thresholds[best]:.2f}).\n\n")


def api_answer(clf, probs: dict[str, float], k, known: dict) -> dict:
    """The JSON answer of /classify_image: the top k, the out-of-distribution verdict, and for a multi-label model
    the chosen labels with every probability and threshold."""
    word = {True: "known", False: UNKNOWN, None: "no out-of-distribution threshold in this checkpoint"}
    answer = {"task": MULTI_LABEL if clf.multi_label else SINGLE_LABEL, "labels": _top(probs, k), **known,
              "verdict": word[known["known"]]}
    if clf.multi_label:
        answer.update(predicted=clf.chosen(probs), probabilities=probs,
                      thresholds=dict(zip(clf.labels, clf.thresholds, strict=True)))
    return answer


def pin_warning(choice) -> str:
    """On a Space, a Hub model without a revision follows whatever is pushed next: say so in the status line."""
    ref = choice.ref or ""
    if ref.startswith("hf-hub:") and "@" not in ref:
        return (f" ⚠️ {choice.source} is not pinned to a revision: every restart serves whatever was pushed last. "
                "Pin it: hf-hub:org/name@<commit sha> (for MODEL_ID also MODEL_REVISION).")
    return ""


def undertrained_warning(reason: str | None) -> str:
    """The status line's warning for a model trained too little to be worth asking (trainer/checkpoint/quality.py)."""
    if not reason:
        return ""
    return f" ⚠️ **Undertrained**: {md_escape(reason, 200)}. Its answers are not worth relying on; train it longer."


class Handlers:
    """The app's event functions for one Settings (which checkpoints to serve)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.latency = Latency()  # this process's own request times, shown beside the eval-time latency

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
        """On page load: load the image model (once per process) → status line, example gallery, top-k range and
        the classes Grad-CAM can explain."""
        try:
            clf = classifier.load_classifier(self._ref("image"), "image")
        except Exception as e:  # shown in the tab; the page itself must load
            return f"⚠️ {user_error(e).message}", [], gr.update(), gr.update()
        ev = eval_results.read_eval(clf.path)
        items = eval_results.example_items(eval_results.served_samples(clf.path), ev.get("samples", {}))
        status = f"✅ `{clf.ref}` ({self.settings.image.source}): {classifier.describe(clf)}"
        status += undertrained_warning(undertrained(ev.get("metrics", {}), ev.get("per_class", {}),
                                                    ev.get("manifest", {})))
        if self.settings.on_space:
            status += pin_warning(self.settings.image)
        return (status, items, gr.update(maximum=len(clf.labels), value=min(DEFAULT_TOP_K, len(clf.labels))),
                gr.update(choices=[TOP_CLASS, *clf.labels], value=TOP_CLASS))

    @as_gr_error
    def predict_image(self, image, top_k: float = DEFAULT_TOP_K, tta: str = "none") -> tuple[dict[str, float], str]:
        """One upload → ({label: calibrated probability} for the top k, timing and conversion notes); tta 'flip' or
        'flip-crops' averages over mirrored (and zoomed) views."""
        if image is None:  # the input was cleared: nothing to say, no error toast
            return {}, ""
        if tta not in TTA_MODES:
            raise InputError(f"tta must be one of {', '.join(TTA_MODES)}.")
        guard_upload(image)
        clf = classifier.load_classifier(self._ref("image"), "image")
        start = time.perf_counter()  # after the (once per process) model load: serving time, not start-up time
        rgb, notes = decode_image(image)
        (probs,), model_ms, logits = clf.predict_images([rgb], tta)
        total_ms = 1000 * (time.perf_counter() - start)
        self.latency.record("image", total_ms)
        views = f" over {NUM_VIEWS[tta]} views (TTA {tta})" if tta != "none" else ""
        info = (f"model {model_ms:.1f} ms (preprocess + forward{views}) · {total_ms:.1f} ms with decoding · "
                f"{self.latency.line('image')}")
        eval_line = eval_results.served_latency_line(clf.path)
        if eval_line:
            info += f"\n\nmeasured at evaluation: {md_escape(eval_line, 300)}"
        known = clf.known(logits[0])  # the plain view's logits, also with TTA: the threshold was fitted on those
        text = chosen_line(clf, probs) + ood_line(known) + info + "".join(f"\n- {n}" for n in notes) + ood_note(known)
        return label_view(clf, probs, top_k), text

    @as_gr_error
    def classify_image(self, image, top_k: float = DEFAULT_TOP_K) -> dict:
        """API only: {task, labels: {label: calibrated probability} top k, ood_score, ood_threshold, known, verdict};
        multi-label models add predicted (the labels over their thresholds), probabilities and thresholds."""
        if image is None:
            raise InputError("no image: pass one (a gradio FileData, as /predict_image takes it).")
        guard_upload(image)
        clf = classifier.load_classifier(self._ref("image"), "image")
        rgb, _notes = decode_image(image)
        (probs,), _ms, logits = clf.predict_images([rgb])
        return api_answer(clf, probs, top_k, clf.known(logits[0]))

    @as_gr_error
    def explain_image(self, image, target: str | None = None):
        """Grad-CAM: (overlay of where the model looked for `target` — the top class when empty — , a note)."""
        if image is None:
            return None, ""
        guard_upload(image)
        clf = classifier.load_classifier(self._ref("image"), "image")
        if target in (None, "", TOP_CLASS):
            index = None
        elif isinstance(target, str) and target in clf.labels:
            index = clf.labels.index(target)
        else:
            raise InputError(f"{md_escape(target)} is not a label of the served model.")
        rgb, _notes = decode_image(image)
        start = time.perf_counter()
        x = clf.transform(rgb)[None]
        cam, cls, logits = explain.gradcam(clf.model, x, index)
        pcfg = clf.config["pretrained_cfg"]
        picture = explain.overlay(explain.shown_input(x, pcfg["mean"], pcfg["std"]), cam)
        prob = float(clf.probs_of(logits[None])[0, cls])
        note = (f"Grad-CAM for **{md_escape(clf.labels[cls])}** (p {prob:.2f}) at layer "
                f"`{explain.target_layer(clf.model, tuple(x.shape[1:])).name}` · "
                f"{1000 * (time.perf_counter() - start):.0f} ms. Red: regions that raised this class's score.")
        return picture, note

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
                labels.append(label_view(clf, p, k) if p is not None else {})
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

    def eval_artifacts(self, which: str):
        """(ref, local dir, config, eval artifacts) of the image or audio checkpoint — no model load."""
        ref = self._ref(which)
        path, config = classifier.checkpoint(ref)
        return ref, path, config, eval_results.read_eval(path)


def pd_empty():
    """An empty table (pandas is imported by space.eval_results anyway)."""
    return eval_results.pd.DataFrame()
