"""The Gradio app: Image, Audio and Validation-metrics tabs for timm-space checkpoints (`python app.py --model …`).

Also runs as `gradio app.py` (reload mode: app flags go after `--`) and as a Hugging Face Space, where the
variables MODEL_ID / MODEL_REVISION / AUDIO_MODEL_ID or space_config.json choose the model.
Importing this module builds the layout only; models and eval artifacts load on page load or first request.
"""

import sys

from space.settings import parse_args, resolve
from space.ui import build_demo

# Flags are read at import, not under __main__: `gradio app.py -- --model X` re-executes this file as a
# module on every reload, and unknown arguments (a test runner's) are ignored.
settings = resolve(parse_args(sys.argv[1:]))
demo = build_demo(settings)

if __name__ == "__main__":
    demo.launch(**settings.launch_options())
