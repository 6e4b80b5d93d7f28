"""EX-4D interactive app: a local web page to load a video (or the built-in example), edit the camera path,
preview the DW-Mesh stage on a few frames and run the stages (the run folder is infer.py's).

Examples:
    python app.py                                   # http://127.0.0.1:7860
    python app.py --port 8000 renderer=cpu          # trailing arguments: infer.py overrides under every choice
    python app.py data.max_side=512 paths.output_dir=/data/runs
"""

import argparse
import logging
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("overrides", nargs="*", help="infer.py overrides (key=value) kept under every choice")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")

    from ex4d.app.session import AppSession
    from ex4d.runners.cli import EXIT_INPUT
    from ex4d.utils.errors import InputError

    try:
        session = AppSession(args.overrides)
        session.compose(session.base_overrides)  # a bad key or option stops here, as in infer.py
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_INPUT)
    from ex4d.app.ui import launch  # Gradio: seconds to import, after the arguments are known to be good

    launch(session, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
