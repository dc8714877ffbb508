"""Hugging Face checkpoints (tinyllm.models.pretrained): folders written by ``transformers``
load into tinyllm's GPT and Llama with the same logits and greedy continuations, and folders
written by tinyllm load into ``transformers``. Nothing is downloaded: every model is a random
tiny one built here."""

import json

import numpy as np
import pytest

import tinyllm
from tinyllm import nn
from tinyllm.cli import main
from tinyllm.models import GPT, GPTConfig, from_pretrained
from tinyllm.models.pretrained import PretrainedError

safetensors_numpy = pytest.importorskip("safetensors.numpy")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

PROMPT = np.array([[3, 14, 15, 9, 2, 6, 5]])


def hf_gpt2(seed=0, **changes):
    torch.manual_seed(seed)
    # initializer_range 0.2 makes the random model's logits peaked, so greedy choices are clear
    config = transformers.GPT2Config(**dict(dict(vocab_size=61, n_positions=32, n_embd=32,
                                                 n_layer=2, n_head=4, initializer_range=0.2,
                                                 bos_token_id=0, eos_token_id=0), **changes))
    return transformers.GPT2LMHeadModel(config).eval()


def hf_llama(seed=0, tie=False, **changes):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(**dict(dict(
        vocab_size=67, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        rms_norm_eps=1e-5, rope_theta=500.0, tie_word_embeddings=tie, initializer_range=0.2,
        bos_token_id=0, eos_token_id=0, pad_token_id=0), **changes))
    return transformers.LlamaForCausalLM(config).eval()


def hf_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.numpy()


def tinyllm_logits(model, ids):
    """Logits at every position: with targets given, the model computes them all."""
    with tinyllm.no_grad():
        logits, _ = model(ids, targets=np.zeros_like(ids))
    return logits.data


def hf_greedy(model, ids, n):
    with torch.no_grad():
        out = model.generate(torch.tensor(ids), max_new_tokens=n, min_new_tokens=n,
                             do_sample=False, pad_token_id=0)
    return out.numpy()


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpt2")
    hf_gpt2().save_pretrained(folder, safe_serialization=True)
    return folder


# ----- GPT-2 --------------------------------------------------------------------------------
def test_gpt2_from_transformers_gives_the_same_logits(gpt2_folder):
    model = from_pretrained(gpt2_folder)
    assert isinstance(model, GPT) and not model.training
    assert model.config.activation == "gelu_tanh" and model.config.block_size == 32
    np.testing.assert_allclose(tinyllm_logits(model, PROMPT), hf_logits(hf_gpt2(), PROMPT),
                               atol=1e-4, rtol=0)


def test_gpt2_greedy_continuation_matches_transformers_token_for_token(gpt2_folder):
    model = from_pretrained(gpt2_folder)
    ours = model.generate(PROMPT, max_new_tokens=12, temperature=0).data
    np.testing.assert_array_equal(ours, hf_greedy(hf_gpt2(), PROMPT, 12))


def test_gpt2_layer_norm_epsilon_and_exact_gelu_are_read(tmp_path):
    hf = hf_gpt2(seed=1, layer_norm_epsilon=1e-2, activation_function="gelu")
    hf.save_pretrained(tmp_path, safe_serialization=True)
    model = from_pretrained(tmp_path)
    assert model.config.layer_norm_epsilon == 1e-2 and model.config.activation == "gelu"
    np.testing.assert_allclose(tinyllm_logits(model, PROMPT), hf_logits(hf, PROMPT),
                               atol=1e-4, rtol=0)


def test_sharded_gpt2_checkpoint_loads(tmp_path):
    hf = hf_gpt2(seed=2)
    hf.save_pretrained(tmp_path, safe_serialization=True, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    np.testing.assert_allclose(tinyllm_logits(from_pretrained(tmp_path), PROMPT),
                               hf_logits(hf, PROMPT), atol=1e-4, rtol=0)


@pytest.mark.parametrize("activation, bias", [("gelu_tanh", True), ("gelu", True),
                                              ("gelu_tanh", False)])
def test_tinyllm_gpt_saved_loads_in_transformers_with_the_same_logits(tmp_path, activation,
                                                                        bias):
    tinyllm.manual_seed(3)
    model = GPT(GPTConfig(vocab_size=53, block_size=16, n_layer=2, n_head=2, n_embd=16,
                          activation=activation, bias=bias, layer_norm_epsilon=1e-4)).eval()
    model.save_pretrained(tmp_path)
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    np.testing.assert_allclose(hf_logits(hf, PROMPT), tinyllm_logits(model, PROMPT),
                               atol=1e-4, rtol=0)


def test_tinyllm_round_trip_with_shards_keeps_every_weight(tmp_path):
    tinyllm.manual_seed(4)
    model = GPT(GPTConfig(vocab_size=53, block_size=16, n_layer=2, n_head=2, n_embd=16))
    model.save_pretrained(tmp_path, max_shard_size=4000)
    assert len(json.loads((tmp_path / "model.safetensors.index.json").read_text())
               ["weight_map"]) == len(model.state_dict()) - 1         # lm_head is tied
    loaded = from_pretrained(tmp_path)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], value, err_msg=name)


# ----- Llama --------------------------------------------------------------------------------
@pytest.mark.parametrize("tie", [False, True])
def test_llama_from_transformers_gives_the_same_logits_and_greedy_tokens(tmp_path, tie):
    hf = hf_llama(seed=5, tie=tie)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    model = from_pretrained(tmp_path)
    assert type(model).__name__ == "Llama"
    c = model.config
    assert (c.num_attention_heads, c.num_key_value_heads, c.rope_theta, c.rms_norm_eps,
            c.tie_word_embeddings) == (4, 2, 500.0, 1e-5, tie)
    np.testing.assert_allclose(tinyllm_logits(model, PROMPT), hf_logits(hf, PROMPT),
                               atol=1e-4, rtol=0)
    ours = model.generate(PROMPT, max_new_tokens=12, temperature=0).data
    np.testing.assert_array_equal(ours, hf_greedy(hf, PROMPT, 12))


@pytest.mark.parametrize("tie", [False, True])
def test_tinyllm_llama_saved_loads_in_transformers_with_the_same_logits(tmp_path, tie):
    from tinyllm.models import Llama, LlamaConfig
    tinyllm.manual_seed(6)
    model = Llama(LlamaConfig(vocab_size=59, hidden_size=32, intermediate_size=40,
                              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                              max_position_embeddings=32, rope_theta=1000.0,
                              tie_word_embeddings=tie)).eval()
    model.save_pretrained(tmp_path)
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    np.testing.assert_allclose(hf_logits(hf, PROMPT), tinyllm_logits(model, PROMPT),
                               atol=1e-4, rtol=0)


# ----- bad folders: each error names the file at fault --------------------------------------
def copy_folder(source, target):
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def test_an_unsupported_model_type_is_named(gpt2_folder, tmp_path):
    edit_config(copy_folder(gpt2_folder, tmp_path), model_type="bert")
    with pytest.raises(PretrainedError, match=r"config\.json has model_type 'bert'.*gpt2"):
        from_pretrained(tmp_path)


def test_a_missing_config_is_named(gpt2_folder, tmp_path):
    copy_folder(gpt2_folder, tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(PretrainedError, match=r"config\.json is missing"):
        from_pretrained(tmp_path)


def test_missing_weights_are_named(gpt2_folder, tmp_path):
    copy_folder(gpt2_folder, tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(PretrainedError, match=r"holds no weights: neither model\.safetensors"):
        from_pretrained(tmp_path)


def test_a_missing_shard_is_named(tmp_path):
    hf_gpt2().save_pretrained(tmp_path, safe_serialization=True, max_shard_size="20KB")
    next(tmp_path.glob("model-00002-*.safetensors")).unlink()
    with pytest.raises(PretrainedError, match=r"model-00002-of-\d+\.safetensors is missing"):
        from_pretrained(tmp_path)


@pytest.mark.parametrize("keep", [0.5, 0.001])
def test_a_truncated_safetensors_file_is_named(gpt2_folder, tmp_path, keep):
    copy_folder(gpt2_folder, tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:max(4, int(len(data) * keep))])
    with pytest.raises(PretrainedError, match=r"model\.safetensors is truncated or not a "
                                              r"safetensors file"):
        from_pretrained(tmp_path)


def test_a_config_that_disagrees_with_the_weights_is_named(gpt2_folder, tmp_path):
    edit_config(copy_folder(gpt2_folder, tmp_path), n_embd=64)
    with pytest.raises(PretrainedError, match=r"tensor transformer\.\S+ in \S*model\.safetensors "
                                              r"has shape .*config\.json describes needs"):
        from_pretrained(tmp_path)


def test_a_missing_tensor_is_named(gpt2_folder, tmp_path):
    copy_folder(gpt2_folder, tmp_path)
    weights = tmp_path / "model.safetensors"
    tensors = safetensors_numpy.load_file(str(weights))
    del tensors["transformer.h.1.ln_2.bias"]
    safetensors_numpy.save_file(tensors, str(weights), metadata={"format": "pt"})
    with pytest.raises(PretrainedError, match=r"model\.safetensors lacks tensor\(s\) "
                                              r"transformer\.h\.1\.ln_2\.bias"):
        from_pretrained(tmp_path)


def test_an_unsupported_gpt2_option_is_named(gpt2_folder, tmp_path):
    edit_config(copy_folder(gpt2_folder, tmp_path), activation_function="relu")
    with pytest.raises(PretrainedError, match=r"config\.json sets activation_function='relu'"):
        from_pretrained(tmp_path)


def test_a_file_instead_of_a_folder_is_an_error(gpt2_folder):
    with pytest.raises(PretrainedError, match=r"is not a folder"):
        from_pretrained(gpt2_folder / "config.json")


# ----- pieces -------------------------------------------------------------------------------
def test_gpt_config_rejects_an_unknown_activation():
    with pytest.raises(ValueError, match=r"GPT: activation must be 'gelu'.*'swish'"):
        GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4,
                      activation="swish"))


def test_no_init_leaves_new_parameters_unfilled():
    with nn.init.no_init():
        skipped = nn.Linear(4, 3)
    filled = nn.Linear(4, 3)
    assert not skipped.weight.data.any() and filled.weight.data.any()


# ----- the command line ---------------------------------------------------------------------
def test_generate_continues_prompt_ids_from_a_folder(gpt2_folder, capsys):
    assert main(["generate", "--checkpoint", str(gpt2_folder), "--prompt-ids", "3,14,15",
                 "--max-new-tokens", "5", "--greedy"]) == 0
    printed = [int(i) for i in capsys.readouterr().out.split()]
    expected = hf_greedy(hf_gpt2(), PROMPT[:, :3], 5)[0]
    assert printed == list(expected)


def test_generate_says_what_is_missing_without_a_tokenizer(gpt2_folder, capsys):
    assert main(["generate", "--checkpoint", str(gpt2_folder), "--prompt", "hello"]) == 2
    error = capsys.readouterr().err
    assert "holds no tokenizer" in error and "--prompt-ids" in error


def test_generate_rejects_prompt_ids_outside_the_vocabulary(gpt2_folder, capsys):
    assert main(["generate", "--checkpoint", str(gpt2_folder), "--prompt-ids", "3,61"]) == 2
    assert "[0, 61)" in capsys.readouterr().err


def test_a_loaded_model_trains_its_loaded_weights(gpt2_folder):
    model = from_pretrained(gpt2_folder).train()
    before = model.transformer.h[0].attn.c_attn.weight.data.copy()
    optimizer = model.configure_optimizers(0.0, 1e-2, (0.9, 0.95))
    _, loss = model(PROMPT[:, :-1], targets=PROMPT[:, 1:])
    loss.backward()
    optimizer.step()
    after = model.transformer.h[0].attn.c_attn.weight.data
    assert after.flags.c_contiguous and np.abs(after - before).max() > 1e-4


def test_the_folder_tokenizer_is_loaded_when_tinyllm_reads_hugging_face_files(tmp_path):
    from tinyllm.data import BPETokenizer
    from tinyllm.serving.inference import load_for_inference
    tokenizers = pytest.importorskip("tokenizers")
    pytest.importorskip("regex")
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    bpe.train_from_iterator(["the cat sat on the mat"] * 20, tokenizers.trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet()))
    hf_gpt2(vocab_size=bpe.get_vocab_size()).save_pretrained(tmp_path, safe_serialization=True)
    bpe.save(str(tmp_path / "tokenizer.json"))
    _, checkpoint = load_for_inference(tmp_path)
    assert isinstance(checkpoint.tokenizer, BPETokenizer)
    for text in ("the cat", "the mat sat on the cat, twice"):
        assert checkpoint.tokenizer.encode(text) == bpe.encode(text).ids


@pytest.mark.parametrize("shape", [(3, 5), (130, 300), (256, 128)])
def test_copy_transposed_equals_a_plain_transposed_copy(shape):
    from tinyllm.models.pretrained import copy_transposed
    source = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    destination = np.empty(shape[::-1], dtype=np.float32)
    copy_transposed(destination, source.T)
    np.testing.assert_array_equal(destination, source.T)


def test_loaded_gpt2_weights_are_contiguous_float32(gpt2_folder):
    model = from_pretrained(gpt2_folder)
    for name, param in model.named_parameters():
        assert param.data.dtype == np.float32 and param.data.flags.c_contiguous, name
    block = model.transformer.h[0].attn.c_attn.weight
    assert block.shape == (96, 32)
