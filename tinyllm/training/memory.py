"""How much memory a model or a training run needs, estimated before anything is allocated.

A size that cannot fit (``--n-embd 1000000``, a checkpoint whose header describes a 96 GiB
model) should be a one-line error naming how much is needed and how much the machine has,
not a MemoryError (or the operating system killing the process) minutes later.

The estimates count float32 numbers:

- parameters, from the model's arguments alone (``estimate_parameters``): for a GPT with
  vocabulary V, context T, L layers of width C,
  ``V*C + T*C + L*(12*C^2 + 13*C) + 2*C`` (embeddings, then per layer the attention's
  ``4*C^2`` and the MLP's ``8*C^2`` weights with their biases and two LayerNorms);
  the other models likewise, term by term;
- training (``estimate_training_bytes``): 4 copies of the parameters (weights, gradients,
  AdamW's two moments) plus the activations kept for the backward pass, about
  ``B*T*(L*20*C + 3*V)`` numbers for a batch of B windows of T tokens (each layer keeps about
  20 activations of width C per token; the logits, their softmax and gradient take 3*V).

They are estimates (within some tens of percent), used only to refuse what cannot work.
"""

import os

BYTES_PER_NUMBER = 4            # float32


def estimate_parameters(model_type, args):
    """About how many parameters the model ``MODEL_BUILDERS[model_type](**args)`` has.

    args: the model's keyword arguments (as a checkpoint stores them); sizes missing from
    them count as the constructors' defaults.
    """
    def size(name, default=0):
        value = args.get(name, default)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
            else 0
    if model_type == "gpt":
        V, T, L, C = (size("vocab_size", 50304), size("block_size", 1024), size("n_layer", 12),
                      size("n_embd", 768))
        return V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C
    if model_type == "lstm":
        V, E, H, L = (size("vocab_size"), size("embedding_dim"), size("hidden_size"),
                      size("num_layers", 2))
        lstm = 4 * H * (E + H + 2) + max(L - 1, 0) * 4 * H * (2 * H + 2)
        return V * E + lstm + H * V + V
    if model_type == "lstm_classifier":
        V, E, H, K = (size("vocab_size"), size("embedding_dim", 50), size("hidden_size", 100),
                      size("num_classes", 1))
        return V * E + 4 * H * (E + H + 2) + H * K + K
    if model_type == "mlm":
        V, T, C, L, F = (size("vocab_size"), size("max_len"), size("d_model"),
                         size("num_layers"), size("dim_feedforward"))
        layer = 4 * C * C + 4 * C + 2 * C * F + F + C + 4 * C
        return V * C + T * C + 2 * C + L * layer + C * C + 3 * C + C * V + V
    if model_type == "seq2seq":
        S, V, C, F, T = (size("src_vocab_size"), size("tgt_vocab_size"), size("d_model"),
                         size("dim_feedforward"), size("max_len", 512))
        encoder = size("num_encoder_layers") * (4 * C * C + 2 * C * F + 10 * C + F)
        decoder = size("num_decoder_layers") * (8 * C * C + 2 * C * F + 16 * C + F)
        return (S + V) * C + T * C + encoder + decoder + 4 * C + C * V + V
    raise ValueError("estimate_parameters: unknown model type %r" % (model_type,))


def estimate_training_bytes(model_type, args, batch_size, block_size, grad_accum=1):
    """About how many bytes training the model needs (see the module docstring)."""
    del grad_accum                      # micro-batches run one after the other
    params = estimate_parameters(model_type, args)
    width = max((v for k, v in args.items() if k in ("n_embd", "d_model", "hidden_size")
                 and isinstance(v, int)), default=0)
    layers = max((v for k, v in args.items() if k in ("n_layer", "num_layers",
                                                      "num_encoder_layers")
                  and isinstance(v, int)), default=1)
    vocab = max((v for k, v in args.items() if k in ("vocab_size", "tgt_vocab_size")
                 and isinstance(v, int)), default=0)
    activations = batch_size * block_size * (max(layers, 1) * 20 * width + 3 * vocab)
    return BYTES_PER_NUMBER * (4 * params + activations)


def available_memory():
    """Bytes of memory this process can still get: MemAvailable of /proc/meminfo (Linux),
    else the physical memory from ``os.sysconf``; None when neither can be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n):
    """1536 -> "1.5 KiB", 3 * 2**30 -> "3.0 GiB"."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (n, unit)
        n /= 1024


def require_memory(needed, what, fix):
    """Raise ValueError when ``needed`` bytes exceed the memory this machine has available.

    what: what needs it ("training this gpt"); fix: the settings to change.
    """
    available = available_memory()
    if available is not None and needed > available:
        raise ValueError("%s needs about %s of memory, but this machine has %s available; %s"
                         % (what, format_bytes(needed), format_bytes(available), fix))
