"""'Wrong? Pick the right label': the correction box of the Image and Audio tabs, feeding space/flywheel.py."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from space import classifier
from space.audio import AudioHandlers
from space.flywheel import MB, Caps, Flywheel, Saved, audio_upload, check_label, client_id, image_upload, size_text
from space.handlers import Handlers, as_gr_error
from space.image_uploads import InputError, guard_upload, md_escape
from space.settings import Settings
from trainer.checkpoint.contract import MULTI_LABEL
from trainer.errors import UserError

FLYWHEEL_OFF = ("Corrections are off in this app: its owner can turn them on with `python app.py --flywheel-dir DIR` "
                "(on a Space: the variable FLYWHEEL_DIR). Nothing you upload is kept.")
SPACE_STORAGE = "/data"  # where a Hugging Face Space mounts persistent storage


def notice(settings: Settings) -> str:
    """The consent notice: what is stored, where, why, and how long it lasts (or that corrections are off)."""
    if not settings.flywheel_dir:
        return f"ℹ️ {FLYWHEEL_OFF}"
    text = (f"**Before you save:** *Save correction* stores the file you uploaded, exactly as uploaded, and the label "
            f"you pick on this app's server in `{settings.flywheel_dir}`, with the time and what the model predicted, "
            "to train the next version of the model, once the app's owner has reviewed it. No account or file name is "
            "recorded; the address you connect from is kept only as a salted one-way hash, to allow each visitor "
            f"{settings.flywheel_quota} corrections an hour. Save only files you may share and that show nobody's "
            f"private information. Limits: {size_text(Caps.file_bytes)} per file, {settings.flywheel_max_files} "
            f"files and {settings.flywheel_max_mb:g} MB in all.\n\nOn a Hugging Face Space, files written to the "
            "Space's disk are lost when it restarts or rebuilds unless persistent storage is attached (and the "
            f"folder is under `{SPACE_STORAGE}`).")
    if settings.on_space and not Path(settings.flywheel_dir).resolve().is_relative_to(SPACE_STORAGE):
        text += f"\n\n⚠️ This Space keeps corrections outside `{SPACE_STORAGE}`: they will be lost at its next restart."
    return text


MULTI_LABEL_OFF = ("Corrections store each file under one class folder; this model is multi-label (several labels "
                   "per input), so they are off for it.")


def single_label(config: dict) -> None:
    """Corrections file an upload under one class: refuse them for a multi-label checkpoint."""
    if config.get("task") == MULTI_LABEL:
        raise UserError(MULTI_LABEL_OFF)


def _revision(path: Path) -> str | None:
    """The Hub commit of a downloaded checkpoint (…/snapshots/<sha>/), None for a local directory."""
    parts = path.parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else None


def _meta(ref: str, path: Path, probs: dict[str, float]) -> dict:
    """The corrections.jsonl fields saying which model predicted what."""
    top = max(probs, key=probs.get) if probs else None
    return {"model": ref, "revision": _revision(path), "predicted": top,
            "confidence": round(probs[top], 4) if top else None}


def _message(saved: Saved, label: str, caps: Caps) -> str:
    """What the user sees after a save."""
    usage = (f"The folder holds {saved.files} of {caps.files} corrections, {size_text(saved.total_bytes)} of "
             f"{size_text(caps.total_bytes)}.")
    if saved.duplicate:
        return (f"Already saved as `{saved.path.as_posix()}` with the label **{md_escape(label)}**: nothing new "
                f"written. {usage}")
    return f"✅ Saved as `{saved.path.as_posix()}` with the label **{md_escape(label)}**. Thank you! {usage}"


class Corrections:
    """The correction boxes' handlers for one app; `flywheel` is None when corrections are off."""

    def __init__(self, handlers: Handlers) -> None:
        s = handlers.settings
        self.handlers = handlers
        self.audio = AudioHandlers(handlers)
        caps = Caps(files=s.flywheel_max_files, total_bytes=int(s.flywheel_max_mb * MB),
                    per_client_hour=s.flywheel_quota)
        self.flywheel = Flywheel(s.flywheel_dir, caps) if s.flywheel_dir else None

    def _on(self) -> Flywheel:
        """The flywheel, or a UserError saying corrections are off and how to turn them on."""
        if self.flywheel is None:
            raise UserError(FLYWHEEL_OFF)
        return self.flywheel

    def _labels(self, modality: str) -> dict:
        """Dropdown update: the served model's labels (from config.json: no model load), disabled when off."""
        if self.flywheel is None:
            return gr.update(choices=[], value=None, interactive=False)
        try:
            _path, config = classifier.checkpoint(self.handlers._ref(modality))
        except Exception:  # no or broken model: the tab's status line already says why
            return gr.update(choices=[], value=None, interactive=False)
        if config.get("task") == MULTI_LABEL:
            return gr.update(choices=[], value=None, interactive=False, info=MULTI_LABEL_OFF)
        return gr.update(choices=list(config["label_names"]), value=None, interactive=True)

    def image_labels(self) -> dict:
        """On page load: the image model's labels for the dropdown."""
        return self._labels("image")

    def audio_labels(self) -> dict:
        """On page load: the audio model's labels for the dropdown."""
        return self._labels("audio")

    def _client(self, request: gr.Request | None) -> str | None:
        """The quota's client: the first X-Forwarded-For hop on a Space (behind its proxy), else the address."""
        return client_id(request, behind_proxy=self.handlers.settings.on_space)

    @as_gr_error
    def save_image(self, image, label: str | None, request: gr.Request = None) -> str:
        """Store the uploaded image (original bytes) under the label picked → where it went, or why not."""
        flywheel = self._on()
        if image is None:
            raise InputError("No image to correct: upload one, see its prediction, then pick the right label.")
        guard_upload(image)
        clf = classifier.load_classifier(self.handlers._ref("image"), "image")
        single_label(clf.config)
        check_label(label, clf.labels)
        upload = image_upload(image, flywheel.caps)
        (probs,), _ms, _logits = clf.predict_images([upload.decoded])
        saved = flywheel.save(upload, label, clf.labels, _meta(clf.ref, clf.path, probs), self._client(request))
        return _message(saved, label, flywheel.caps)

    @as_gr_error
    def save_audio(self, clip, label: str | None, request: gr.Request = None) -> str:
        """Store the uploaded clip (original bytes) under the label picked → where it went, or why not."""
        flywheel = self._on()
        if clip is None:
            raise InputError("No clip to correct: upload or record one, see its prediction, then pick the right label.")
        guard_upload(clip)
        ref = self.handlers._ref("audio")
        path, config = classifier.checkpoint(ref)
        single_label(config)
        check_label(label, config["label_names"])
        upload = audio_upload(clip, flywheel.caps)
        probs, _spectrogram, _info = self.audio.predict_audio(clip)  # the top-k the user saw
        saved = flywheel.save(upload, label, config["label_names"], _meta(ref, path, probs), self._client(request))
        return _message(saved, label, flywheel.caps)


def correction_box(demo: gr.Blocks, corrections: Corrections, media: gr.components.Component, modality: str) -> None:
    """Under a tab's input: the consent notice, a label dropdown and Save (disabled, with the reason, when off)."""
    on = corrections.flywheel is not None
    audio = modality == "audio"
    with gr.Accordion("Wrong? Pick the right label", open=False):
        gr.Markdown(notice(corrections.handlers.settings))
        with gr.Row():
            label = gr.Dropdown(choices=[], value=None, label="Correct label", interactive=on)
            save = gr.Button("Save correction", interactive=on)
        result = gr.Markdown()
    demo.load(corrections.audio_labels if audio else corrections.image_labels, outputs=label,
              api_name="audio_correction_labels" if audio else "correction_labels")
    # preprocess=False: the handler gets the upload untouched (original bytes) and the label as sent, checked
    # against the served model's labels (the dropdown's choices only arrive on page load, after build).
    save.click(corrections.save_audio if audio else corrections.save_image, inputs=[media, label], outputs=result,
               api_name="save_audio_correction" if audio else "save_correction", preprocess=False)
