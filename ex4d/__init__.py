"""EX-4D: extreme-viewpoint 4D video synthesis from one monocular video.

Stages (import direction is one way):
cameras -> depth / mesh / render / masking -> data -> model -> pipelines -> lightning / training -> runners.
docs/architecture.md has the full table of what each folder may import (tests/unit/test_import_rules.py checks it).
"""

__version__ = "0.1.0"
