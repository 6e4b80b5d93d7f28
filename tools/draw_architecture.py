"""Draw docs/architecture.png: the data flow of one run (top) and the layers of ``ex4d/`` (bottom).

    python tools/draw_architecture.py                       # writes docs/architecture.png
    python tools/draw_architecture.py --out /tmp/arch.png

The layer rows come from the import-rule table (``ALLOWED`` in tests/unit/test_import_rules.py, the one place
that says what each folder may import), so the picture cannot drift from the rule the tests enforce; rerun this
after changing that table. The data-flow boxes are drawn from the list below.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

# (box title, folder + main names, what comes out) left to right: one run of infer.py, then evaluate.py.
FLOW = [
    ("video", "ex4d/io, ex4d/data\nload_input_clip", "frames\n(T,H,W,3) uint8"),
    ("depth", "ex4d/depth\nDepthBackend", "depth (T,H,W)\nEX-4D scale, K"),
    ("mesh", "ex4d/mesh\nDWMeshBuilder", "DW-Mesh per frame;\nex4d/cameras:\npath w2c, K"),
    ("render", "ex4d/render\nCpuRenderer /\nNvdiffrastRenderer", "colour + mask\nvideos of the\nnew path"),
    ("generate", "ex4d/pipelines/generate.py\nEX4DGenerator\nex4d/model: Wan, LoRA,\nGeometryEncoder", "output.mp4"),
    ("metrics", "ex4d/metrics: FIDKID,\nFVD, VBench, camera_\nfollowing; run by\nex4d/evaluation Evaluator", "results.json,\nper_video.csv"),
]


def draw(out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from tests.unit.test_import_rules import ALLOWED, layer_ranks

    fig = plt.figure(figsize=(13, 10.5), dpi=110)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, 13)
    ax.set_ylim(0, 10.5)
    ax.axis("off")

    def box(x, y, w, h, text, face, size=9, weight="normal"):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=face, ec="#333",
                                    lw=1.0))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size, weight=weight)

    def arrow(x0, y0, x1, y1, colour="#333"):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=14, color=colour, lw=1.3))

    # --- data flow -------------------------------------------------------------------------------------------
    ax.text(0.3, 10.1, "Data flow (python infer.py, then evaluate.py)", fontsize=13, weight="bold")
    w, gap, y = 1.8, 0.32, 8.05
    recon_x0 = 0.3 + (w + gap)
    ax.add_patch(FancyBboxPatch((recon_x0 - 0.1, y - 0.2), 3 * w + 2 * gap + 0.2, 1.85,
                                boxstyle="round,pad=0.02", fc="#eef5ff", ec="#6a8fc7", lw=1.0))
    ax.text(recon_x0 + (3 * w + 2 * gap) / 2, y + 1.45, "pipelines.recon.ReconPipeline (stage=recon)", ha="center",
            fontsize=9, color="#2b4f8a", style="italic")
    for i, (title, where, result) in enumerate(FLOW):
        x = 0.3 + i * (w + gap)
        face = "#dff0d8" if title in ("generate",) else "#fcf3d9" if title == "metrics" else "#ffffff"
        box(x, y, w, 1.2, "", face)
        ax.text(x + w / 2, y + 1.02, title, ha="center", va="center", fontsize=10, weight="bold")
        ax.text(x + w / 2, y + 0.48, where, ha="center", va="center", fontsize=7.5)
        ax.text(x + w / 2, y - 0.55, result, ha="center", va="center", fontsize=7.5, color="#555")
        if i:
            arrow(x - gap + 0.02, y + 0.6, x - 0.02, y + 0.6)
    ax.text(0.3, 6.75, "training: data.prepare (depth + masking -> shards) -> training (EX4DTrainingModule, "
            "Lightning) -> adapter .safetensors -> generate", fontsize=8.5, color="#444")
    ax.text(0.3, 6.45, "entry points: infer.py / train.py / evaluate.py / tools/*.py -> runners (Hydra config "
            "-> objects -> the stages above) -> dict of results", fontsize=8.5, color="#444")

    # --- layers ----------------------------------------------------------------------------------------------
    ranks = layer_ranks()
    top = max(ranks.values())
    ax.text(0.3, 5.95, "Layers of ex4d/ (a folder imports only folders in lower rows; "
            "tests/unit/test_import_rules.py)", fontsize=13, weight="bold")
    row_h, y0 = 0.5, 0.25
    for r in range(top + 1):
        folders = sorted(f for f, k in ranks.items() if k == r)
        yy = y0 + r * row_h
        ax.text(0.35, yy + row_h / 2 - 0.04, str(r), ha="center", va="center", fontsize=9, color="#777")
        bw = 1.8
        for j, f in enumerate(folders):
            x = 0.7 + j * (bw + 0.15)
            hydra = f in ("runners", "app")
            lightning = f in ("lightning", "training", "evaluation", "runners")
            face = "#f6d5d5" if hydra else "#dff0d8" if lightning else "#ffffff"
            box(x, yy + 0.05, bw, row_h - 0.12, f, face, size=9, weight="bold")
        lower = {f for f, k in ranks.items() if k < r}
        allowed = {f: ("every lower row" if ALLOWED[f] == lower else ", ".join(sorted(ALLOWED[f])) or "nothing")
                   for f in folders}
        if len(set(allowed.values())) == 1 and r:
            x_text = 0.7 + len(folders) * (bw + 0.15) + 0.15
            ax.text(x_text, yy + row_h / 2 - 0.04, f"may import: {next(iter(allowed.values()))}", va="center", fontsize=7.5,
                    color="#555")
    ax.text(9.4, 3.3, "red: imports Hydra / OmegaConf\ngreen: imports Lightning\nwhite: plain PyTorch / NumPy\n"
            "\nspeed levers: GenerateSettings\n(pipelines/generate.py), the policy\nin pipelines/levers.py", fontsize=8.5, va="top", color="#333",
            bbox=dict(fc="#fafafa", ec="#bbb"))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "architecture.png")
    print(draw(parser.parse_args(argv).out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
