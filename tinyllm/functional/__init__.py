"""``tinyllm.functional`` (imported as ``F``): the layers and losses as plain functions.

    import tinyllm.functional as F
    y = F.linear(x, weight, bias)
    loss = F.cross_entropy(logits, targets)
"""

from tinyllm.functional.activation import gelu, log_softmax, relu, sigmoid, softmax, tanh
from tinyllm.functional.activation import silu
from tinyllm.functional.linear import embedding, linear
from tinyllm.functional.normalization import layer_norm, rms_norm
from tinyllm.functional.rotary import (apply_rotary_emb, rope_cos_sin, rope_frequencies,
                                      rotary_embedding)
from tinyllm.functional.swiglu import repeat_kv, swiglu
from tinyllm.functional.dropout import dropout
from tinyllm.functional.attention import (attention_weights, causal_mask,
                                          scaled_dot_product_attention)

# Losses (tinyllm/functional/loss.py):
from tinyllm.functional.loss import (cross_entropy, nll_loss, binary_cross_entropy,
                                     binary_cross_entropy_with_logits, mse_loss, kl_div,
                                     distillation_loss)
