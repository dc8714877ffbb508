"""Serving a trained model: a prompt in, text out, on the command line and over HTTP.

- ``inference``: ``complete`` (prompt in, text out, for every model type) and ``predict``
  (a classifier's probability), used by ``tinyllm generate`` and by the server;
- ``serve``: ``make_server``, a small JSON-over-HTTP server on the standard library.

Serving sits above ``training``: it loads the checkpoints that training writes.
"""

from tinyllm.serving.inference import GenerationOptions, PromptError, complete, predict
from tinyllm.serving.serve import ServerLimits, make_server

__all__ = ["GenerationOptions", "PromptError", "complete", "predict", "make_server",
           "ServerLimits"]
