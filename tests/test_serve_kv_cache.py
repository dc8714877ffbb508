"""Continuous batching on a KV cache (tinyllm.serving.scheduler): each request owns a row of
one cache, reads its prompt once, then feeds one token a step in a batch with requests at
other positions, and gets exactly the tokens it would get alone."""

import numpy as np
import pytest

import tinyllm
from tinyllm.models import GPT, GPTConfig, sampling
from tinyllm.serving.inference import GenerationOptions, GenerationStopped
from tinyllm.serving.scheduler import (GenerationJob, RequestKVCache, Scheduler,
                                       gpt_next_token_logits)


def gpt(block_size=8, double=False):
    tinyllm.manual_seed(3)
    model = GPT(GPTConfig(block_size=block_size, vocab_size=11, n_layer=2, n_head=2,
                          n_embd=16))
    return (model.double() if double else model).eval()


def run_all(scheduler, jobs, timeout=60):
    try:
        for job in jobs:
            scheduler.submit(job)
        for job in jobs:
            assert job.done.wait(timeout) and job.error is None, job.error
    finally:
        scheduler.close()


def test_a_batched_decode_gives_each_row_the_logits_of_its_own_context():
    model = gpt(double=True)
    rng = np.random.default_rng(0)
    contexts = [list(rng.integers(0, 11, size=n)) for n in (1, 7, 3, 5)]
    cache = RequestKVCache(model, rows=6)
    slots = [4, 0, 5, 2]                                   # any free rows, in any order
    first = cache.prefill(slots, contexts)                 # padded to 7 positions
    for context, row in zip(contexts, first):
        alone = model(np.array([context]))[0].data[0, -1]
        np.testing.assert_allclose(row, alone, rtol=1e-12, atol=1e-14)
    tokens = [3, 9, 0, 6]
    logits = cache.decode(slots, tokens, [len(c) for c in contexts])
    assert logits.shape == (4, 11)
    for context, token, row in zip(contexts, tokens, logits):
        alone = model(np.array([context + [token]]))[0].data[0, -1]   # re-read in full
        np.testing.assert_allclose(row, alone, rtol=1e-12, atol=1e-14)


def test_decode_matches_the_re_read_of_every_context_for_several_steps():
    model = gpt(double=True)
    rng = np.random.default_rng(1)
    contexts = [list(rng.integers(0, 11, size=n)) for n in (2, 5, 1)]
    cache = RequestKVCache(model, rows=3)
    cache.prefill([0], contexts[:1])                       # prefills at different steps
    cache.prefill([2, 1], [contexts[2], contexts[1]])
    for _ in range(3):                                     # 5 + 3 = block_size 8 at the end
        tokens = list(rng.integers(0, 11, size=3))
        logits = cache.decode([0, 1, 2], tokens, [len(c) for c in contexts])
        contexts = [c + [int(t)] for c, t in zip(contexts, tokens)]
        np.testing.assert_allclose(logits, gpt_next_token_logits(model, contexts),
                                   rtol=1e-11, atol=1e-13)


class Spy:
    """Records what RequestKVCache.prefill reads (context lengths) and decode (batch sizes)."""

    def __init__(self, monkeypatch):
        self.prefills, self.decodes = [], []
        prefill, decode = RequestKVCache.prefill, RequestKVCache.decode

        def spy_prefill(cache, slots, contexts):
            self.prefills.extend(len(context) for context in contexts)
            return prefill(cache, slots, contexts)

        def spy_decode(cache, slots, tokens, positions):
            self.decodes.append(len(slots))
            return decode(cache, slots, tokens, positions)

        monkeypatch.setattr(RequestKVCache, "prefill", spy_prefill)
        monkeypatch.setattr(RequestKVCache, "decode", spy_decode)


def test_each_prompt_is_read_once_and_each_later_token_alone(monkeypatch):
    spy = Spy(monkeypatch)
    model = gpt(block_size=32)
    prompts, lengths = [[1, 2, 3], [4], [5, 6, 7, 8, 9]], [6, 10, 4]
    scheduler = Scheduler(model, max_batch_size=4)
    jobs = [GenerationJob(p, GenerationOptions(max_new_tokens=n, temperature=0))
            for p, n in zip(prompts, lengths)]
    run_all(scheduler, jobs)
    assert sorted(spy.prefills) == sorted(len(p) for p in prompts)
    assert sum(spy.decodes) == sum(lengths) - len(jobs)   # the first token comes from the prefill
    assert max(spy.decodes) > 1                            # requests shared a decode pass
    for job, prompt, n in zip(jobs, prompts, lengths):
        assert job.result == sampling.greedy(model, prompt, n)


def test_requests_past_block_size_are_re_read_and_give_their_rows_back(monkeypatch):
    spy = Spy(monkeypatch)
    model = gpt(block_size=8)
    prompts, lengths = [[1, 2, 3], [4] * 10, [5, 6]], [12, 5, 3]   # 10 > 8: re-read at once
    scheduler = Scheduler(model, max_batch_size=3)
    jobs = [GenerationJob(p, GenerationOptions(max_new_tokens=n, temperature=0))
            for p, n in zip(prompts, lengths)]
    run_all(scheduler, jobs)
    assert sorted(spy.prefills) == [2, 3]                  # the 10-token prompt never fits
    assert sum(spy.decodes) == (8 - 3) + (3 - 1)           # [1, 2, 3] decodes up to 8 ids
    assert sorted(scheduler.cache.free) == [0, 1, 2]
    for job, prompt, n in zip(jobs, prompts, lengths):
        assert job.result == sampling.greedy(model, prompt, n)


def test_requests_arriving_mid_generation_get_their_one_at_a_time_tokens():
    model = gpt(block_size=16)
    rng = np.random.default_rng(2)
    prompts = [list(rng.integers(0, 11, size=1 + i % 4)) for i in range(7)]
    options = [GenerationOptions(max_new_tokens=3 + 4 * i, temperature=0.9, top_k=6, seed=i,
                                 repetition_penalty=1.1) for i in range(7)]
    expected = [sampling.generate(model, p, o.max_new_tokens, temperature=0.9, top_k=6,
                                  seed=o.seed, repetition_penalty=1.1)
                for p, o in zip(prompts, options)]
    scheduler = Scheduler(model, max_batch_size=3)         # fewer rows than requests
    jobs = []
    try:
        for prompt, option in zip(prompts, options):
            jobs.append(scheduler.submit(GenerationJob(prompt, option)))
            steps = scheduler.steps
            while scheduler.steps == steps and not jobs[-1].done.is_set():
                jobs[-1].done.wait(0.005)                 # the next one arrives a step later
        for job in jobs:
            assert job.done.wait(60) and job.error is None
    finally:
        scheduler.close()
    assert scheduler.largest_batch == 3
    assert sorted(scheduler.cache.free) == [0, 1, 2]
    for job, tokens in zip(jobs, expected):
        assert job.result == list(tokens)


def test_a_cancelled_request_gives_its_row_back():
    model = gpt(block_size=16)
    scheduler = Scheduler(model, max_batch_size=2)
    long_job = GenerationJob([1, 2], GenerationOptions(max_new_tokens=10 ** 6, temperature=0))
    try:
        scheduler.submit(long_job)
        while scheduler.steps < 3:
            long_job.done.wait(0.005)
        long_job.cancel()
        assert long_job.done.wait(30)
        assert isinstance(long_job.error, GenerationStopped)
        assert sorted(scheduler.cache.free) == [0, 1]
        short = scheduler.submit(GenerationJob([3], GenerationOptions(max_new_tokens=4,
                                                                      temperature=0)))
        assert short.done.wait(30) and short.result == sampling.greedy(model, [3], 4)
    finally:
        scheduler.close()


@pytest.mark.parametrize("use_cache", [True, False])
def test_with_and_without_the_cache_the_tokens_are_the_same(use_cache):
    model = gpt(block_size=8)
    prompts, lengths = [[1, 2], [3, 4, 5, 6, 7], [8]], [9, 6, 2]
    scheduler = Scheduler(model, max_batch_size=4, use_cache=use_cache)
    jobs = [GenerationJob(p, GenerationOptions(max_new_tokens=n, temperature=0))
            for p, n in zip(prompts, lengths)]
    run_all(scheduler, jobs)
    assert (scheduler.cache is not None) == use_cache
    for job, prompt, n in zip(jobs, prompts, lengths):
        assert job.result == sampling.greedy(model, prompt, n)
