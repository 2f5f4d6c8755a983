"""`resnest-bench`: parse, build the config, call the harness, print. No logic hides here."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from harness import console
from harness.errors import BenchError
from models import ModelError

Handler = Callable[[argparse.Namespace], int]


def cmd_models(args: argparse.Namespace) -> int:
    from models import list_models
    from models.profile import model_summary

    overrides = {"stem": args.stem, "num_classes": args.num_classes}
    rows = [model_summary(name, **overrides) for name in list_models()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            row["gmacs"] = round(row["macs"] / 1e9, 3)
        console.print_table(
            "Model configs (params and GMACs at each config's default input size)",
            rows,
            ["name", "block", "stem", "input_size", "params", "gmacs"],
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resnest-bench",
        description="Train, export and time ResNeSt split-attention networks; write reports.",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars, log lines only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = sub.add_parser("models", help="list model configs with params and MACs")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.add_argument("--stem", choices=["imagenet", "cifar"], help="override every stem")
    models.add_argument("--num-classes", type=int, help="override every head")
    models.set_defaults(handler=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console.configure(quiet=args.quiet)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (BenchError, ModelError) as exc:
        print(f"resnest-bench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("resnest-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
