"""The app's layout: one gr.Tab per feature (Image, Audio, Validation metrics), each event wired with an api_name."""

from __future__ import annotations

import gradio as gr

from space.audio import AudioHandlers
from space.corrections import Corrections, correction_box
from space.eval_results import NORMALIZE
from space.handlers import DEFAULT_TOP_K, TOP_CLASS, Handlers
from space.metrics import VIEW_SIZE, MetricsHandlers
from space.settings import Settings
from trainer.evaluation.tta import TTA_MODES

# CPU inference: a forward pass already uses every core, so more than 2 concurrent single-image calls only
# queue inside torch; 2 lets one request decode its upload while another runs the model.
IMAGE_CONCURRENCY = 2
# The batch endpoint runs one batch at a time: requests that arrive meanwhile wait and form the next batch.
MAX_BATCH = 16
QUEUE_MAX = 64  # beyond this a client is told the queue is full instead of waiting minutes
# UI plumbing (status lines on page load, gallery and table clicks, the whole metrics view): callable, so the page
# works and tests can drive it, but left off the "Use via API" page, which lists what docs/app.md promises.
UI_ONLY = {"api_visibility": "undocumented"}

INTRO = ("Classify images (and audio clips) with a timm checkpoint fine-tuned by timm-space, and inspect how it "
         "did on held-out data. Probabilities are temperature-calibrated. API: see “Use via API” below.")


def _image_tab(demo: gr.Blocks, handlers: Handlers, corrections: Corrections) -> None:
    """Upload/webcam/clipboard → calibrated top-k label (optionally with TTA), latency and conversion notes,
    a Grad-CAM overlay on request; clickable examples."""
    status = gr.Markdown("⏳ Loading the image model…")
    with gr.Row():
        with gr.Column():
            # type="filepath" + preprocess=False below: the handler receives the uploaded file untouched and
            # decodes it itself (space/image_uploads.py). With type="pil" gradio decodes first, and a corrupt, huge or
            # non-image upload fails inside gradio with a generic processing error instead of our message.
            image = gr.Image(type="filepath", image_mode=None, sources=["upload", "webcam", "clipboard"],
                             label="Image")
            with gr.Row():
                top_k = gr.Slider(1, 20, value=DEFAULT_TOP_K, step=1, label="Top k")
                tta = gr.Radio(list(TTA_MODES), value="none", label="Test-time augmentation",
                               info="average over mirrored (and zoomed) views: 2 or 4 forward passes")
        with gr.Column():
            label = gr.Label(label="Prediction (calibrated probabilities)")
            info = gr.Markdown()
            with gr.Accordion("Why? Grad-CAM: where the model looked", open=False):
                with gr.Row():
                    target = gr.Dropdown([TOP_CLASS], value=TOP_CLASS, label="Explain class", scale=3)
                    explain = gr.Button("Explain", scale=1)
                heatmap = gr.Image(label="Grad-CAM overlay", type="pil", interactive=False)
                explain_info = gr.Markdown()
            correction_box(demo, corrections, image, "image")
    examples = gr.Gallery(label="Examples from the evaluation split (click one to classify it)", columns=10,
                          height="auto", allow_preview=False)
    demo.load(handlers.image_status, outputs=[status, examples, top_k, target], api_name="image_model", **UI_ONLY)
    gr.on([image.change, top_k.release, tta.change], handlers.predict_image, inputs=[image, top_k, tta],
          outputs=[label, info], api_name="predict_image", preprocess=False, concurrency_limit=IMAGE_CONCURRENCY,
          concurrency_id="predict_image")
    explain.click(handlers.explain_image, inputs=[image, target], outputs=[heatmap, explain_info],
                  api_name="explain_image", preprocess=False, concurrency_limit=IMAGE_CONCURRENCY,
                  concurrency_id="predict_image")
    examples.select(handlers.pick_example, outputs=image, api_name="pick_example", **UI_ONLY)


def _batch_api(handlers: Handlers) -> None:
    """/predict_image_batch and /classify_image: API only (hidden components); gradio hands the batch handler the
    requests queued while the previous batch ran, up to MAX_BATCH, as one call."""
    with gr.Row(visible=False):
        image = gr.Image(type="filepath", image_mode=None, label="Image")
        top_k = gr.Number(value=DEFAULT_TOP_K, precision=0, label="Top k")
        label = gr.Label(label="Prediction")
        message = gr.Textbox(label="Error message (empty on success)")
        trigger = gr.Button("batch")
        answer = gr.JSON(label="Answer")
        classify = gr.Button("classify")
    trigger.click(handlers.predict_image_batch, inputs=[image, top_k], outputs=[label, message],
                  api_name="predict_image_batch", preprocess=False, batch=True, max_batch_size=MAX_BATCH,
                  concurrency_limit=1)
    # /classify_image: the top k with the out-of-distribution score, threshold and verdict, as JSON
    classify.click(handlers.classify_image, inputs=[image, top_k], outputs=answer, api_name="classify_image",
                   preprocess=False, concurrency_limit=IMAGE_CONCURRENCY, concurrency_id="predict_image")


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
    demo.load(audio.status, outputs=status, api_name="audio_model", **UI_ONLY)
    clip.change(audio.predict_audio, inputs=clip, outputs=[label, spectrogram, info], api_name="predict_audio",
                preprocess=False, concurrency_limit=IMAGE_CONCURRENCY, concurrency_id="predict_audio")


def _metrics_tab(demo: gr.Blocks, metrics: MetricsHandlers) -> None:
    """Everything in the checkpoint's eval/, in sub-tabs: Summary, Errors, Calibration, Data, History."""
    which = gr.Radio(["image", "audio"], value="image", label="Checkpoint")
    status = gr.Markdown("⏳ Loading the evaluation artifacts…")
    with gr.Tabs():
        with gr.Tab("Summary"):
            # a fixed key column and a wrapping value column: on a phone the keys stay whole words (measured in
            # tests/test_browser.py at 1280 and 390 px)
            summary = gr.Dataframe(label="Run", interactive=False, wrap=True, column_widths=["150px", "65%"],
                                   elem_id="run-summary")
            headline = gr.Dataframe(label="Headline metrics", interactive=False)
            per_class = gr.Dataframe(label="Per class (sort by any column from its header)", interactive=False)
        with gr.Tab("Errors"):
            normalize = gr.Radio(list(NORMALIZE), value="counts", label="Confusion matrix values")
            matrix = gr.Dataframe(label="Confusion matrix (rows = true, columns = predicted): click a cell to see "
                                  "its samples", interactive=False, elem_id="confusion-matrix")
            cell_note = gr.Markdown()
            cell = gr.Dropdown(label="Cell (true → predicted)", choices=[], interactive=True)
            cell_samples = gr.Gallery(label="Samples in this cell (p = calibrated probability)", columns=8,
                                      height="auto")
            pairs = gr.Dataframe(label="Most confused pairs (click a row to see its samples)", interactive=False)
            top_loss = gr.Gallery(label="Highest-loss samples (true → predicted)", columns=8, height="auto")
            explained = gr.Gallery(label="Why: Grad-CAM of the class each highest-loss sample was mistaken for",
                                   columns=8, height="auto")
        with gr.Tab("Calibration"):
            calibration = gr.Markdown()
            reliability = gr.Plot(label="Reliability diagram")
        with gr.Tab("Data"):
            preflight = gr.Markdown()
        with gr.Tab("History"):
            history = gr.Dataframe(label="Training history (per epoch)", interactive=False)
            with gr.Accordion("eval/metrics.json", open=False):
                show_raw = gr.Button("Show")
                raw = gr.JSON()
    outputs = [status, summary, headline, per_class, matrix, pairs, cell, cell_note, cell_samples, top_loss,
               explained, calibration, reliability, preflight, history]
    assert len(outputs) == VIEW_SIZE
    gr.on([demo.load, which.change], metrics.metrics_view, inputs=which, outputs=outputs, api_name="metrics_view",
          **UI_ONLY)
    show_raw.click(metrics.metrics_json, inputs=which, outputs=raw, api_name="metrics")
    normalize.change(metrics.confusion_table, inputs=[which, normalize], outputs=matrix, api_name="confusion_matrix")
    matrix.select(metrics.pick_cell, inputs=which, outputs=[cell, cell_samples, cell_note], api_name="pick_cell",
                  **UI_ONLY)
    pairs.select(metrics.pick_pair, inputs=which, outputs=[cell, cell_samples, cell_note], api_name="pick_pair",
                 **UI_ONLY)
    cell.input(metrics.cell_gallery, inputs=[which, cell], outputs=cell_samples, api_name="confused_samples")
    cell.input(metrics.cell_summary, inputs=[which, cell], outputs=cell_note, api_name="cell_summary", **UI_ONLY)


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
            _metrics_tab(demo, MetricsHandlers(handlers))
        _batch_api(handlers)
    demo.queue(max_size=QUEUE_MAX)
    return demo
