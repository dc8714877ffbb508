"""Layers and models' building blocks: ``Module``, ``Parameter``, containers and layers.

PyTorch is the reference for names, parameter shapes, initialisation and behaviour, so a
PyTorch ``state_dict`` (converted to NumPy arrays) loads into the matching tinyllm module.
"""

from tinyllm.nn.parameter import Parameter
from tinyllm.nn.module import Module
from tinyllm.nn.containers import ModuleDict, ModuleList, Sequential
from tinyllm.nn import utils
from tinyllm.nn import init
from tinyllm.nn.linear import Identity, Linear
from tinyllm.nn.embedding import Embedding
from tinyllm.nn.normalization import LayerNorm, RMSNorm
from tinyllm.nn.dropout import Dropout
from tinyllm.nn.activation import GELU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh
from tinyllm.nn.rnn import LSTM, LSTMCell
from tinyllm.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from tinyllm.nn.attention import (GroupedQueryAttention, KVCache, MultiheadAttention,
                                  cached_causal_attention)
from tinyllm.nn.rotary import RotaryEmbedding
from tinyllm.nn.swiglu import LlamaMLP
from tinyllm.nn.transformer import (TransformerDecoder, TransformerDecoderLayer,
                                    TransformerEncoder, TransformerEncoderLayer,
                                    generate_square_subsequent_mask)
from tinyllm.nn.loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, KLDivLoss, MSELoss,
                             NLLLoss)
