"""The app's layout: one gr.Tab per feature (Image, Audio, Validation metrics), each event wired with an api_name."""

from __future__ import annotations

import gradio as gr

from space.audio import AudioHandlers
from space.corrections import Corrections, correction_box
from space.handlers import DEFAULT_TOP_K, Handlers
from space.settings import Settings

# CPU inference: a forward pass already uses every core, so more than 2 concurrent single-image calls only
# queue inside torch; 2 lets one request decode its upload while another runs the model.
IMAGE_CONCURRENCY = 2
# The batch endpoint runs one batch at a time: requests that arrive meanwhile wait and form the next batch.
MAX_BATCH = 16
QUEUE_MAX = 64  # beyond this a client is told the queue is full instead of waiting minutes

INTRO = ("Classify images (and audio clips) with a timm checkpoint fine-tuned by timm-space, and inspect how it "
         "did on held-out data. Probabilities are temperature-calibrated. API: see “Use via API” below.")


def _image_tab(demo: gr.Blocks, handlers: Handlers, corrections: Corrections) -> None:
    """Upload/webcam/clipboard → calibrated top-k label, latency and conversion notes; clickable examples."""
    status = gr.Markdown("⏳ Loading the image model…")
    with gr.Row():
        with gr.Column():
            # type="filepath" + preprocess=False below: the handler receives the uploaded file untouched and
            # decodes it itself (space/images.py). With type="pil" gradio decodes first, and a corrupt, huge or
            # non-image upload fails inside gradio with a generic processing error instead of our message.
            image = gr.Image(type="filepath", image_mode=None, sources=["upload", "webcam", "clipboard"],
                             label="Image")
            top_k = gr.Slider(1, 20, value=DEFAULT_TOP_K, step=1, label="Top k")
        with gr.Column():
            label = gr.Label(label="Prediction (calibrated probabilities)")
            info = gr.Markdown()
            correction_box(demo, corrections, image, "image")
    examples = gr.Gallery(label="Examples from the evaluation split (click one to classify it)", columns=10,
                          height="auto", allow_preview=False)
    demo.load(handlers.image_status, outputs=[status, examples, top_k], api_name="image_model")
    gr.on([image.change, top_k.release], handlers.predict_image, inputs=[image, top_k], outputs=[label, info],
          api_name="predict_image", preprocess=False, concurrency_limit=IMAGE_CONCURRENCY,
          concurrency_id="predict_image")
    examples.select(handlers.pick_example, outputs=image, api_name="pick_example")


def _batch_api(handlers: Handlers) -> None:
    """/predict_image_batch: API only (hidden components); gradio batches concurrent requests into one call."""
    with gr.Row(visible=False):
        image = gr.Image(type="filepath", image_mode=None, label="Image")
        top_k = gr.Number(value=DEFAULT_TOP_K, precision=0, label="Top k")
        label = gr.Label(label="Prediction")
        message = gr.Textbox(label="Error message (empty on success)")
        trigger = gr.Button("batch")
    trigger.click(handlers.predict_image_batch, inputs=[image, top_k], outputs=[label, message],
                  api_name="predict_image_batch", preprocess=False, batch=True, max_batch_size=MAX_BATCH,
                  concurrency_limit=1)


def _audio_tab(demo: gr.Blocks, audio: AudioHandlers, corrections: Corrections) -> None:
    """Upload or record a clip → label, spectrogram and notes (or why there is no audio model)."""
    status = gr.Markdown("⏳ Loading the audio model…")
    with gr.Row():
        # preprocess=False for the same reason as images: our front end decodes, so bad files get our message.
        clip = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio clip")
        with gr.Column():
            label = gr.Label(label="Prediction")
            spectrogram = gr.Image(label="Log-mel spectrogram (what the model sees)", type="pil")
            info = gr.Markdown()
            correction_box(demo, corrections, clip, "audio")
    demo.load(audio.status, outputs=status, api_name="audio_model")
    clip.change(audio.predict_audio, inputs=clip, outputs=[label, spectrogram, info], api_name="predict_audio",
                preprocess=False, concurrency_limit=IMAGE_CONCURRENCY, concurrency_id="predict_audio")


def _metrics_tab(demo: gr.Blocks, handlers: Handlers) -> None:
    """Everything in the checkpoint's eval/: summary, metrics, confusion, per class, calibration, samples."""
    which = gr.Radio(["image", "audio"], value="image", label="Checkpoint")
    summary = gr.Markdown("⏳ Loading the evaluation artifacts…")
    headline = gr.Dataframe(label="Headline metrics", interactive=False)
    with gr.Row():
        with gr.Column():
            normalize = gr.Checkbox(label="Row-normalise (each row sums to 1; the diagonal is recall)")
            confusion = gr.Plot(label="Confusion matrix (rows = true, columns = predicted)")
        with gr.Column():
            calibration = gr.Markdown()
            reliability = gr.Plot(label="Reliability diagram")
    per_class = gr.Dataframe(label="Per class (sort by any column from its header)", interactive=False)
    pairs = gr.Dataframe(label="Most confused pairs (click a row to see its samples)", interactive=False)
    cell = gr.Dropdown(label="True → predicted cell", choices=[], interactive=True)
    cell_samples = gr.Gallery(label="Samples in this cell", columns=8, height="auto")
    top_loss = gr.Gallery(label="Highest-loss samples (true → predicted)", columns=8, height="auto")
    history = gr.Dataframe(label="Training history (per epoch)", interactive=False)
    with gr.Accordion("eval/metrics.json", open=False):
        show_raw = gr.Button("Show")
        raw = gr.JSON()
    outputs = [summary, headline, confusion, per_class, pairs, reliability, calibration, top_loss, cell,
               cell_samples, history]
    gr.on([demo.load, which.change], handlers.metrics_view, inputs=which, outputs=outputs,
          api_name="metrics_view")
    show_raw.click(handlers.metrics_json, inputs=which, outputs=raw, api_name="metrics")
    normalize.change(handlers.confusion_plot, inputs=[which, normalize], outputs=confusion,
                     api_name="confusion_matrix")
    cell.change(handlers.cell_gallery, inputs=[which, cell], outputs=cell_samples, api_name="confused_samples")
    pairs.select(handlers.pick_pair, inputs=which, outputs=cell, api_name="pick_pair")


def build_demo(settings: Settings) -> gr.Blocks:
    """The whole app for one Settings; builds the layout only (models load on page load or first request)."""
    handlers = Handlers(settings)
    corrections = Corrections(handlers)
    cache = (settings.delete_cache_s, settings.delete_cache_s) if settings.delete_cache_s else None
    with gr.Blocks(title="timm-space", delete_cache=cache) as demo:
        gr.Markdown(f"# timm-space\n{INTRO}")
        with gr.Tab("Image"):
            _image_tab(demo, handlers, corrections)
        with gr.Tab("Audio"):
            _audio_tab(demo, corrections.audio, corrections)
        with gr.Tab("Validation metrics"):
            _metrics_tab(demo, handlers)
        _batch_api(handlers)
    demo.queue(max_size=QUEUE_MAX)
    return demo
