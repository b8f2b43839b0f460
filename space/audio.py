"""The Audio tab's handlers: an audio checkpoint through trainer/audio.py, the front end training used."""

from __future__ import annotations

from types import SimpleNamespace

from space import classifier
from space.handlers import Handlers, as_gr_error, user_error
from trainer.errors import UserError


def front_end() -> SimpleNamespace:
    """trainer.audio's log-mel front end, or a UserError when this build has none."""
    try:  # a plain `from trainer.audio import` so that trainer/space_repo.py ships the module with a Space
        from trainer.audio import AudioConfig, LogMel, load_waveform, sliding_window_logits, spectrogram_image
    except ImportError as e:
        raise UserError(f"The audio front end (trainer/audio.py) is not available in this build ({e}), "
                        "so the Audio tab cannot classify.") from None
    return SimpleNamespace(AudioConfig=AudioConfig, LogMel=LogMel, load_waveform=load_waveform,
                           sliding_window_logits=sliding_window_logits, spectrogram_image=spectrogram_image)


class AudioHandlers:
    """Status and prediction for the Audio tab, for the audio model of a Handlers' settings."""

    def __init__(self, handlers: Handlers) -> None:
        self.handlers = handlers

    def _classifier(self) -> classifier.Classifier:
        """The audio classifier, loaded on first use (UserError if none is configured or it cannot run)."""
        ref = self.handlers._ref("audio")
        front_end()
        return classifier.classifier(ref, "audio")

    def status(self) -> str:
        """On page load: the audio model's status line (or why there is none)."""
        try:
            clf = self._classifier()
        except Exception as e:  # shown in the tab; the page itself must load
            return f"⚠️ {user_error(e).message}"
        return f"✅ `{clf.ref}` ({self.handlers.settings.audio.source}): {classifier.describe(clf)}"

    @as_gr_error
    def predict_audio(self, audio) -> tuple[dict[str, float], object, str]:
        """A clip → ({label: probability}, its spectrogram image, notes)."""
        clf = self._classifier()
        raise UserError(f"{clf.ref}: audio inference is not wired into the app yet.")
