"""The KV cache: GPT and Llama generation that feeds only the new token gives the logits of a
full re-read (to float32 rounding) with every sampling option, keeps preallocated arrays,
handles contexts longer than block_size by the documented rule, and serves beam search."""

import numpy as np
import pytest

import tinyllm
from tinyllm import nn
from tinyllm.models import GPT, GPTConfig, Llama, LlamaConfig
from tinyllm.models.sampling import (CachedStepper, ContextStepper, beam_search,
                                     beam_search_tokens, generate_tokens)


def gpt(block_size=16):
    tinyllm.manual_seed(0)
    return GPT(GPTConfig(block_size=block_size, vocab_size=30, n_layer=2, n_head=4, n_embd=32))


def llama(block_size=16):
    tinyllm.manual_seed(0)
    return Llama(LlamaConfig(vocab_size=30, hidden_size=32, intermediate_size=40,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=block_size, initializer_range=0.1))


MODELS = [gpt, llama]
PROMPT = np.array([[1, 5, 2, 7, 3], [4, 4, 9, 0, 11]])


class Recorder:
    """A model wrapper that records the length of every input it is given."""

    def __init__(self, model):
        self.model, self.lengths = model, []

    def __call__(self, ids, **kwargs):
        self.lengths.append(np.shape(ids)[1])
        return self.model(ids, **kwargs)

    def new_cache(self, *args):
        return self.model.new_cache(*args)


@pytest.mark.parametrize("make", MODELS)
def test_cached_step_logits_equal_a_full_recompute(make):
    model = make()
    cached, full = CachedStepper(model, 16), ContextStepper(model, 16)
    with tinyllm.no_grad():
        a, b = cached.start(PROMPT), full.start(PROMPT)
        for token in range(8):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
            nxt = np.array([token, 29 - token])
            a, b = cached.advance(nxt), full.advance(nxt)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make", MODELS)
@pytest.mark.parametrize("options", [dict(temperature=0.0),
                                     dict(temperature=0.8, top_k=5),
                                     dict(temperature=1.2, top_p=0.9)])
def test_generate_with_and_without_the_cache_gives_the_same_tokens(make, options):
    model = make()
    runs = [model.generate(PROMPT, 9, generator=np.random.default_rng(3), use_cache=use,
                           **options).data for use in (True, False)]
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize("make", MODELS)
def test_each_step_feeds_one_token_into_one_preallocated_cache(make):
    model = Recorder(make())
    stepper = CachedStepper(model, 16)
    with tinyllm.no_grad():
        stepper.start(PROMPT)
        keys = stepper.cache.keys.data
        for token in range(6):
            stepper.advance(np.array([token, token]))
    assert model.lengths == [5] + [1] * 6
    assert stepper.cache.keys.data is keys and stepper.cache.length == 11
    assert keys.shape[3] == 16                  # room for block_size positions, allocated once


@pytest.mark.parametrize("make", MODELS)
def test_a_context_longer_than_block_size_rereads_the_last_block_size_tokens(make):
    model = make(block_size=8)
    recorder = Recorder(model)
    with tinyllm.no_grad():
        ids = generate_tokens(CachedStepper(recorder, 8), PROMPT, 7, temperature=0.0)
    assert recorder.lengths == [5, 1, 1, 1, 8, 8, 8]    # 5+3 = 8 fit; then the window slides
    same = model.generate(PROMPT, 7, temperature=0.0, use_cache=False).data
    np.testing.assert_array_equal(ids, same)


@pytest.mark.parametrize("make", MODELS)
def test_beam_search_with_the_cache_finds_the_same_continuation(make):
    model = make()
    with_cache = beam_search(model, [3, 1, 4], 6, beam_size=3)         # model.stepper(): cached
    assert with_cache == beam_search_tokens(CachedStepper(model, 16), [3, 1, 4], 6, 3)
    assert with_cache == beam_search_tokens(ContextStepper(model, 16), [3, 1, 4], 6, 3)


@pytest.mark.parametrize("make", MODELS)
def test_feeding_chunks_into_the_cache_equals_one_forward(make):
    model = make()
    ids = np.array([[1, 2, 3, 4, 5, 6, 7]])
    with tinyllm.no_grad():
        full = [model(ids[:, :t])[0].data[:, -1] for t in (3, 7)]
        cache = model.new_cache(1)
        first = model(ids[:, :3], cache=cache)[0].data[:, -1]
        second = model(ids[:, 3:], cache=cache)[0].data[:, -1]      # 4 queries over 7 keys
    np.testing.assert_allclose(first, full[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(second, full[1], rtol=1e-4, atol=1e-5)


def test_kv_cache_errors_and_size():
    cache = nn.KVCache(n_layer=2, batch_size=1, n_kv_head=2, max_len=4, head_dim=3)
    assert cache.nbytes_per_token() == 2 * 2 * 2 * 3 * 4
    k = tinyllm.zeros(1, 2, 5, 3)
    with pytest.raises(ValueError, match="0 cached positions \\+ 5 new exceed its max_len 4"):
        cache.update(0, k, k)
    with pytest.raises(ValueError, match="do not fit a cache"):
        cache.update(0, tinyllm.zeros(1, 3, 1, 3), tinyllm.zeros(1, 3, 1, 3))
    with pytest.raises(ValueError, match="exceeds block_size minus the cached positions 2"):
        model = gpt(block_size=4)
        cache = model.new_cache(1)
        model(np.array([[1, 2]]), cache=cache)
        model(np.array([[1, 2, 3]]), cache=cache)


class ThreadRecorder(Recorder):
    """A model wrapper that records how many threads each call may use."""

    def __call__(self, ids, **kwargs):
        from tinyllm.kernels import cpu_runtime
        self.lengths.append(cpu_runtime.kernel_threads())
        return self.model(ids, **kwargs)


def test_a_cached_step_for_few_sequences_runs_on_one_thread():
    from tinyllm.kernels import cpu_runtime
    from tinyllm.models import sampling
    threads = cpu_runtime.kernel_threads()
    few, many = PROMPT, np.tile(PROMPT, (sampling.FEW_ROWS, 1))     # 2 and 2 FEW_ROWS rows
    for prompt, step_threads in ((few, 1), (many, threads)):
        model = ThreadRecorder(gpt())
        stepper = CachedStepper(model, 16)
        with tinyllm.no_grad():
            stepper.start(prompt)
            stepper.advance(np.zeros(len(prompt), dtype=np.int64))
        assert model.lengths == [threads, step_threads]   # the prompt read keeps every thread
