"""The interactive app (``python app.py``): a local web page to load a video or the built-in example, edit a
camera path, preview the DW-Mesh stage on a few frames, and run ``infer.py``'s stages into a run folder.

:mod:`ex4d.app.controls` (trajectory controls -> camera keys) and :mod:`ex4d.app.session` (configs, preview,
runs) hold the logic without Gradio; :mod:`ex4d.app.ui` builds the page (the only module importing Gradio).
"""
