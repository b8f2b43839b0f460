"""The Gradio app's modules (UI, classifiers, metrics views); they read only the checkpoint contract."""
