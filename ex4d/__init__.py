"""EX-4D: extreme-viewpoint 4D video synthesis from one monocular video.

Stages (import direction is one way):
cameras -> depth / mesh / render / masking -> data -> model -> pipelines -> runners.
"""

__version__ = "0.1.0"
