"""The model types a checkpoint can hold, and how to build each from its saved arguments.

A checkpoint stores a model type (a key below) and the keyword arguments of its constructor
(JSON-ready), so loading is ``MODEL_BUILDERS[model_type](**model_args)`` followed by
``load_state_dict``. This table is the one place that maps names to classes.
"""

from tinyllm.models import (GPT, GPTConfig, LSTMClassifier, LSTMLanguageModel, MLMEncoder,
                            Seq2SeqTransformer)


def _gpt(**args):
    return GPT(GPTConfig(**args))


MODEL_BUILDERS = {
    "gpt": _gpt,                            # args: GPTConfig's fields
    "lstm": LSTMLanguageModel,              # args: LSTMLanguageModel's keyword arguments
    "mlm": MLMEncoder,
    "seq2seq": Seq2SeqTransformer,
    "lstm_classifier": LSTMClassifier,
}

# Models that continue a text token by token (``tinyllm generate``'s sampling options apply).
LANGUAGE_MODELS = ("gpt", "lstm", "llama")

# The kernels (keys of tinyllm.kernels.backend.AUTO_CHOICE) that training each model calls:
# which of them must be compiled on a first run (tinyllm.kernels.compilation).
_TRANSFORMER_KERNELS = ("attention", "softmax_cross_entropy", "layer_norm", "gelu", "adam",
                        "embedding", "matmul")
_LSTM_KERNELS = ("softmax_cross_entropy", "adam", "embedding", "matmul")
KERNEL_KINDS = {"gpt": _TRANSFORMER_KERNELS, "mlm": _TRANSFORMER_KERNELS,
                "seq2seq": _TRANSFORMER_KERNELS, "lstm": _LSTM_KERNELS,
                "lstm_classifier": _LSTM_KERNELS}


def build_model(model_type, model_args):
    """A freshly initialised model of ``model_type`` built from ``model_args`` (a dict)."""
    if model_type not in MODEL_BUILDERS:
        raise ValueError("unknown model type %r; known: %s"
                         % (model_type, ", ".join(MODEL_BUILDERS)))
    try:
        return MODEL_BUILDERS[model_type](**model_args)
    except TypeError as error:
        raise ValueError("cannot build a %s model from the arguments %s: %s"
                         % (model_type, model_args, error)) from None
