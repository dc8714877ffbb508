"""The models: GPT, LSTM language model and classifier, a BERT-style masked-language-model
encoder and an encoder-decoder Transformer for sequence-to-sequence tasks."""

from tinyllm.models.gpt import GPT, GPTConfig
from tinyllm.models.llama import Llama, LlamaConfig
from tinyllm.models.lstm import LSTMClassifier, LSTMLanguageModel
from tinyllm.models.mlm import MLMEncoder
from tinyllm.models.pretrained import from_pretrained, save_pretrained
from tinyllm.models.seq2seq import Seq2SeqTransformer

__all__ = ["GPT", "GPTConfig", "LSTMLanguageModel", "LSTMClassifier", "MLMEncoder",
           "Seq2SeqTransformer", "Llama", "LlamaConfig", "from_pretrained", "save_pretrained"]
