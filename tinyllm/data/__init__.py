"""Text in, batches out: tokenizers, corpora, token files and batching.

    import numpy as np
    from tinyllm.data import load_corpus, ByteBPETokenizer, train_val_split, get_lm_batch
    text = load_corpus("pydoc")                        # ~0.5 MB of English, no download
    tok = ByteBPETokenizer().train(text, vocab_size=512)
    train, val = train_val_split(np.array(tok.encode(text)))
    x, y = get_lm_batch(train, batch_size=12, block_size=64)   # (12, 64) int64 each
"""

from tinyllm.data.batching import (Seq2SeqBatch, bucket_by_length, collate_seq2seq,
                                   get_lm_batch, iterate_lm_batches, mask_tokens, pad_sequences)
from tinyllm.data.corpus import (BUILTIN_CORPORA, load_corpus, load_tokens, read_text_file,
                                 save_tokens, token_dtype, train_val_split)
from tinyllm.data.tokenizers import (SPLIT_PATTERN, BPETokenizer, ByteBPETokenizer, CharTokenizer,
                                     load_tokenizer, tokenizer_from_dict)

__all__ = ["CharTokenizer", "ByteBPETokenizer", "BPETokenizer", "SPLIT_PATTERN", "load_tokenizer",
           "tokenizer_from_dict", "load_corpus", "BUILTIN_CORPORA", "read_text_file",
           "train_val_split", "save_tokens", "load_tokens", "token_dtype", "get_lm_batch",
           "iterate_lm_batches", "pad_sequences", "collate_seq2seq", "Seq2SeqBatch",
           "mask_tokens", "bucket_by_length"]
