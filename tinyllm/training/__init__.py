"""Training, checkpoints and evaluation: using the models on real text (serving is
``tinyllm.serving``).

    from tinyllm.training import train
    result = train(steps=300, out="out")          # a small GPT on Python's pydoc topics
    print(result.samples["after"])

- ``config``: ``TrainConfig``, every setting of a run;
- ``tasks``: what each model type learns (data, batches, loss, metrics, samples);
- ``trainer``: ``train`` / ``Trainer``, the loop (AdamW, warm-up + cosine, clipping,
  accumulation, evaluation, checkpoints, NaN guard, progress bar, loss plot);
- ``checkpoint``: the verified, atomically written checkpoint file;
- ``evaluation``: loss, perplexity, bits per character / byte, BLEU;
"""

from tinyllm.models.sampling import beam_search, generate
from tinyllm.training.checkpoint import (Checkpoint, CheckpointError, load_checkpoint,
                                         load_model, save_checkpoint)
from tinyllm.training.config import TrainConfig
from tinyllm.training.evaluation import (bits_per_token, corpus_bleu, evaluate_language_model,
                                         perplexity)
from tinyllm.training.trainer import Trainer, TrainingDiverged, TrainResult, train

__all__ = ["TrainConfig", "train", "Trainer", "TrainResult", "TrainingDiverged",
           "save_checkpoint", "load_checkpoint", "load_model", "Checkpoint", "CheckpointError",
           "generate", "beam_search", "perplexity", "bits_per_token", "corpus_bleu",
           "evaluate_language_model"]
