"""``python -m tinyllm`` and the ``tinyllm`` console script: see ``tinyllm.cli``.

    tinyllm            help, and a hint where to start
    tinyllm train      train a small GPT on Python's pydoc topics (and more: tinyllm train -h)
    tinyllm demo       train a small network by gradient descent, check its gradients, plot
"""

import sys


def main(argv=None):
    """The exit status of the ``tinyllm`` command run with ``argv`` (default: sys.argv[1:])."""
    from tinyllm.cli import main as cli_main
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
