"""The Gradio app (image, audio and validation-metrics tabs) lands with the app issue; this placeholder says so."""

import sys

MESSAGE = ("The Gradio app is coming (see the app issue). Meanwhile load the checkpoint with plain timm: "
           "timm.create_model('local-dir:<output-dir>', pretrained=True)")

if __name__ == "__main__":
    args = sys.argv[1:]
    model = args[args.index("--model") + 1] if "--model" in args else "outputs/fashion-mnist-lite0"
    print(f"{MESSAGE}\ncheckpoint: {model}")
