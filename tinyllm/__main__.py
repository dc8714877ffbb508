"""The ``tinyllm`` command (also ``python -m tinyllm``).

    tinyllm            the demonstration (same as ``tinyllm demo``)
    tinyllm demo       train a small network by gradient descent, check its gradients, plot
"""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tinyllm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser("demo", help="train a small network and check its gradients")
    demo.add_argument("--steps", type=int, default=2000, help="gradient descent steps")
    demo.add_argument("--lr", type=float, default=0.1, help="learning rate")
    demo.add_argument("--out", default=".", help="folder for the loss plot")
    args = parser.parse_args(argv)

    if args.command in (None, "demo"):
        from tinyllm import demo as demo_module
        demo_module.run(steps=getattr(args, "steps", 2000), lr=getattr(args, "lr", 0.1),
                        out_dir=getattr(args, "out", "."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
