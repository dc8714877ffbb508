"""Hugging Face checkpoints: ``from_pretrained(folder)`` and ``save_pretrained(model, folder)``.

A Hugging Face model folder holds

- ``config.json``: the architecture (``model_type``: "gpt2" or "llama" here) and its sizes;
- ``model.safetensors``: the weights, by name; or, for large models, several shards
  ``model-00001-of-0000N.safetensors`` and ``model.safetensors.index.json`` whose
  ``weight_map`` names the shard of every tensor;
- optionally a tokenizer: ``tokenizer.json``, or GPT-2's ``vocab.json`` + ``merges.txt``
  (read by ``tinyllm.serving.inference.load_folder_tokenizer``, a layer above the models).

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON (per tensor:
dtype, shape, byte offsets) and the raw little-endian arrays: reading it is a memory copy, with
no code run (unlike a pickle). The ``safetensors`` package (``pip install tinyllm[hf]``) reads
it as NumPy arrays; PyTorch is not needed.

The names and layouts, Hugging Face -> tinyllm:

GPT-2 (``GPT2LMHeadModel``; ``tinyllm.models.GPT`` uses the same names). GPT-2's linear layers
are ``Conv1D`` modules storing W as (in, out), y = x W + b, where ``nn.Linear`` stores (out, in),
y = x W^T + b: every ``c_attn``, ``c_proj``, ``c_fc`` weight is transposed. ``c_attn`` holds
[W_q | W_k | W_v] side by side, (C, 3C), so its transpose (3C, C) is tinyllm's fused q, k, v
projection as it is. ``lm_head.weight`` is the token embedding (tied). The config's
``activation_function="gelu_new"`` is the tanh approximation of GELU,
0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (``GPTConfig.activation="gelu_tanh"``);
``layer_norm_epsilon`` is the LayerNorms' eps; ``n_positions`` the context (``block_size``).

Llama (``LlamaForCausalLM``; ``tinyllm.models.llama.Llama`` uses the same names and the
half-split rotary layout of Hugging Face's weights): every tensor loads as it is; with
``tie_word_embeddings`` the file has no ``lm_head.weight`` and the embedding serves.

Every weight is converted to float32 (tinyllm's default dtype). Loading checks each tensor's
shape against the model that ``config.json`` describes before copying, so a wrong config,
a missing tensor or a damaged file is an error that names the file, not garbage logits.
"""

import json
from dataclasses import fields
from pathlib import Path

import numpy as np

from tinyllm.autograd import no_grad
from tinyllm.models.gpt import GPT, GPTConfig
from tinyllm.nn import init

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
SUPPORTED_MODEL_TYPES = ("gpt2", "llama")

# GPT-2's Conv1D weights, stored (in, out): transposed on the way in and out.
_GPT2_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
                "mlp.c_proj.weight")
# Buffers that some checkpoints hold and that carry no learned values: the causal mask of
# older GPT-2 files, the rotary frequencies of older Llama files.
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq")
# Hugging Face GPT-2 activation names -> GPTConfig.activation.
_GPT2_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                     "gelu_fast": "gelu_tanh", "gelu": "gelu"}


class PretrainedError(ValueError):
    """A Hugging Face folder that tinyllm cannot load: the message names the file at fault."""


# ----- reading a folder ---------------------------------------------------------------------
def read_config(folder):
    """The dict of ``folder/config.json``; PretrainedError if it is missing or not JSON."""
    path = Path(folder) / CONFIG_NAME
    if not Path(folder).is_dir():
        raise PretrainedError("from_pretrained: %s is not a folder; give a Hugging Face model "
                              "folder holding %s and %s" % (folder, CONFIG_NAME, WEIGHTS_NAME))
    if not path.is_file():
        raise PretrainedError("from_pretrained: %s is missing; a Hugging Face model folder "
                              "holds %s (the architecture) beside %s" % (path, CONFIG_NAME,
                                                                         WEIGHTS_NAME))
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PretrainedError("from_pretrained: %s is not valid JSON (%s)" % (path, error)) \
            from None
    if not isinstance(config, dict):
        raise PretrainedError("from_pretrained: %s does not hold a JSON object" % path)
    return config


def weight_files(folder):
    """{tensor name: safetensors file} for ``folder``: every tensor of ``model.safetensors``,
    or the ``weight_map`` of ``model.safetensors.index.json`` for a sharded checkpoint."""
    folder = Path(folder)
    single, index = folder / WEIGHTS_NAME, folder / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
            raise PretrainedError("from_pretrained: %s is not a safetensors index (a JSON "
                                  "object with a weight_map): %s" % (index, error)) from None
        shards = {name: folder / shard for name, shard in weight_map.items()}
        for shard in sorted(set(shards.values())):
            if not shard.is_file():
                raise PretrainedError("from_pretrained: %s is missing; %s lists it as a shard"
                                      % (shard, index))
        return shards
    if single.is_file():
        return {name: single for name in _open(single).keys()}
    found = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth"))
    hint = (" (found %s: PyTorch pickles, which tinyllm does not read; convert them with "
            "transformers' save_pretrained(safe_serialization=True))" % ", ".join(found)
            if found else "")
    raise PretrainedError("from_pretrained: %s holds no weights: neither %s nor %s%s"
                          % (folder, WEIGHTS_NAME, INDEX_NAME, hint))


def _safetensors():
    try:
        import safetensors.numpy  # noqa: F401  (the package's NumPy API)
        from safetensors import safe_open
    except ImportError:
        raise ImportError("reading Hugging Face weights needs the safetensors package: "
                          "pip install 'tinyllm[hf]' (or pip install safetensors)") from None
    return safe_open


def _open(path):
    """A safetensors file opened for reading as NumPy arrays (a clear error if damaged)."""
    safe_open = _safetensors()
    try:
        return safe_open(str(path), framework="np")
    except Exception as error:      # safetensors raises its own SafetensorError, not OSError
        raise PretrainedError("from_pretrained: %s is truncated or not a safetensors file (%s)"
                              % (path, error)) from None


def read_weights(files):
    """{name: float32 array} from {name: safetensors file} (see ``weight_files``)."""
    by_file = {}
    for name, path in files.items():
        by_file.setdefault(path, []).append(name)
    tensors = {}
    for path, names in by_file.items():
        handle = _open(path)
        present = set(handle.keys())
        for name in names:
            if name not in present:
                raise PretrainedError("from_pretrained: %s lacks tensor %s, which %s places "
                                      "there" % (path, name, INDEX_NAME))
            try:
                array = handle.get_tensor(name)
            except Exception as error:
                raise PretrainedError("from_pretrained: cannot read tensor %s of %s (%s); "
                                      "tinyllm reads float16, float32 and float64 weights"
                                      % (name, path, error)) from None
            tensors[name] = np.ascontiguousarray(array, dtype=np.float32)
    return tensors


# ----- GPT-2 --------------------------------------------------------------------------------
def gpt_config_from_hf(hf, where=CONFIG_NAME):
    """The ``GPTConfig`` of a Hugging Face GPT-2 config dict (dropout 0: a loaded model is used
    for inference; set ``model.config.dropout`` and rebuild to fine-tune with dropout)."""
    def unsupported(field, value, expected):
        raise PretrainedError("from_pretrained: %s sets %s=%r; tinyllm's GPT supports only %s"
                              % (where, field, value, expected))

    n_embd = _required(hf, "n_embd", where)
    if hf.get("n_inner") not in (None, 4 * n_embd):
        unsupported("n_inner", hf["n_inner"], "4 * n_embd = %d (or null)" % (4 * n_embd))
    activation = hf.get("activation_function", "gelu_new")
    if activation not in _GPT2_ACTIVATIONS:
        unsupported("activation_function", activation, "one of %s" % sorted(_GPT2_ACTIVATIONS))
    for field, expected in (("scale_attn_weights", True),
                            ("scale_attn_by_inverse_layer_idx", False),
                            ("add_cross_attention", False)):
        if hf.get(field, expected) != expected:
            unsupported(field, hf[field], expected)
    if not hf.get("tie_word_embeddings", True):
        unsupported("tie_word_embeddings", False, "true (lm_head shares the token embedding)")
    return GPTConfig(block_size=_required(hf, "n_positions", where),
                     vocab_size=_required(hf, "vocab_size", where),
                     n_layer=_required(hf, "n_layer", where),
                     n_head=_required(hf, "n_head", where), n_embd=n_embd, dropout=0.0,
                     bias=True, activation=_GPT2_ACTIVATIONS[activation],
                     layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-5))


def gpt_config_to_hf(config):
    """The Hugging Face GPT-2 config dict of a ``GPTConfig``."""
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": config.vocab_size, "n_positions": config.block_size,
            "n_embd": config.n_embd, "n_layer": config.n_layer, "n_head": config.n_head,
            "n_inner": None,
            "activation_function": "gelu_new" if config.activation == "gelu_tanh" else "gelu",
            "layer_norm_epsilon": config.layer_norm_epsilon,
            "resid_pdrop": config.dropout, "embd_pdrop": config.dropout,
            "attn_pdrop": config.dropout, "tie_word_embeddings": True,
            "bos_token_id": None, "eos_token_id": None, "dtype": "float32"}


def gpt_state_from_hf(tensors):
    """tinyllm GPT's state dict from GPT-2's tensors: the ``transformer.`` prefix added where
    a file saved from ``GPT2Model`` lacks it, Conv1D weights transposed, lm_head tied."""
    state = {}
    for name, array in tensors.items():
        if name != "lm_head.weight" and not name.startswith("transformer."):
            name = "transformer." + name
        if name.endswith(_GPT2_CONV1D):
            array = array.T         # a view: _assign_state copies it into the parameter once
        state[name] = array
    state.setdefault("lm_head.weight", state.get("transformer.wte.weight"))
    return state


def gpt_state_to_hf(model):
    """GPT-2's tensors from a tinyllm GPT: Conv1D weights transposed, no lm_head (tied), and
    zero biases where the model has none (``bias=False`` computes the same as zero biases)."""
    tensors = {}
    for name, array in model.state_dict().items():
        if name == "lm_head.weight":
            continue
        tensors[name] = np.ascontiguousarray(array.T if name.endswith(_GPT2_CONV1D) else array)
    for name, param in model.named_parameters():
        if name.endswith(".weight") and name != "transformer.wte.weight" \
                and name != "transformer.wpe.weight":
            bias = name[:-len("weight")] + "bias"
            if bias not in tensors:
                rows = param.shape[0]
                tensors[bias] = np.zeros(rows, dtype=np.float32)
    return tensors


# ----- Llama --------------------------------------------------------------------------------
def llama_config_from_hf(hf, where=CONFIG_NAME):
    """tinyllm's ``LlamaConfig`` from a Hugging Face Llama config dict (the same field names;
    ``rope_theta`` read from ``rope_parameters`` as newer files write it)."""
    from tinyllm.models.llama import LlamaConfig

    def unsupported(field, value, expected):
        raise PretrainedError("from_pretrained: %s sets %s=%r; tinyllm's Llama supports only %s"
                              % (where, field, value, expected))

    hidden, heads = _required(hf, "hidden_size", where), _required(hf, "num_attention_heads",
                                                                   where)
    if hf.get("hidden_act", "silu") != "silu":
        unsupported("hidden_act", hf["hidden_act"], "'silu' (SwiGLU)")
    for field in ("attention_bias", "mlp_bias"):
        if hf.get(field, False):
            unsupported(field, hf[field], "false (no biases)")
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        unsupported("rope type", rope.get("rope_type", rope.get("type")), "'default' (plain RoPE)")
    values = dict(vocab_size=_required(hf, "vocab_size", where), hidden_size=hidden,
                  intermediate_size=_required(hf, "intermediate_size", where),
                  num_hidden_layers=_required(hf, "num_hidden_layers", where),
                  num_attention_heads=heads,
                  num_key_value_heads=hf.get("num_key_value_heads") or heads,
                  max_position_embeddings=hf.get("max_position_embeddings", 2048),
                  rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
                  rope_theta=rope.get("rope_theta", hf.get("rope_theta", 10000.0)),
                  tie_word_embeddings=hf.get("tie_word_embeddings", False),
                  head_dim=hf.get("head_dim"))
    known = {f.name for f in fields(LlamaConfig)}
    if "head_dim" not in known and hf.get("head_dim") not in (None, hidden // heads):
        unsupported("head_dim", hf["head_dim"], "hidden_size / num_attention_heads = %d"
                    % (hidden // heads))
    if "rope_layout" in known:
        values["rope_layout"] = "half"          # Hugging Face's weights expect half-split pairs
    return LlamaConfig(**{k: v for k, v in values.items() if k in known})


def llama_config_to_hf(config):
    """The Hugging Face Llama config dict of tinyllm's ``LlamaConfig``."""
    if getattr(config, "rope_layout", "half") != "half":
        raise PretrainedError("save_pretrained: a Llama with rope_layout=%r cannot be saved for "
                              "Hugging Face, whose Llama rotates half-split pairs (build it "
                              "with rope_layout='half')" % config.rope_layout)
    hf = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
          "attention_bias": False, "mlp_bias": False, "dtype": "float32"}
    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                 "num_attention_heads", "num_key_value_heads", "max_position_embeddings",
                 "rms_norm_eps", "tie_word_embeddings"):
        hf[name] = getattr(config, name)
    hf["head_dim"] = getattr(config, "head_dim", None) or \
        config.hidden_size // config.num_attention_heads
    hf["rope_theta"] = config.rope_theta
    hf["rope_parameters"] = {"rope_type": "default", "rope_theta": config.rope_theta}
    return hf


# ----- the two entry points -----------------------------------------------------------------
def from_pretrained(folder):
    """The tinyllm model (GPT or Llama, in eval mode) of a Hugging Face model folder.

    Reads ``config.json`` and the safetensors weights (one file or shards), maps the names and
    layouts (see the module docstring) and checks every shape before loading. The tokenizer,
    when the folder holds one, comes from ``tinyllm.serving.inference.load_folder_tokenizer``.
    """
    config_path = Path(folder) / CONFIG_NAME
    hf = read_config(folder)
    model_type = hf.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise PretrainedError("from_pretrained: %s has model_type %r; tinyllm loads %s"
                              % (config_path, model_type, " and ".join(SUPPORTED_MODEL_TYPES)))
    files = weight_files(folder)
    if model_type == "gpt2":
        config = gpt_config_from_hf(hf, config_path)
        with init.no_init():            # every weight is about to be overwritten
            model = GPT(config)
        rename = gpt_state_from_hf
    else:
        from tinyllm.models.llama import Llama
        config = llama_config_from_hf(hf, config_path)
        with init.no_init():
            model = Llama(config)
        rename = _llama_state_from_hf
    files = {name: path for name, path in files.items() if not name.endswith(_IGNORED_SUFFIXES)}
    state = rename(read_weights(files))
    _check_state(model, state, files, config_path)
    _assign_state(model, state)
    return model.eval()


def _assign_state(model, state):
    """Put the arrays of ``state`` (fresh float32, shapes checked) into the model's parameters.

    A C-contiguous array of the parameter's dtype becomes the parameter's data as it is, no
    copy (``load_state_dict`` with PyTorch's ``assign=True``); any other (the transposed views
    of GPT-2's Conv1D weights) is copied once into the parameter's own array
    (``copy_transposed``). Tied parameters get the array of their first name."""
    assigned = set()
    with no_grad():
        for name, tensor in model._state_items():
            if id(tensor) not in assigned:
                array = state[name]
                if array.dtype == tensor.dtype and array.flags.c_contiguous:
                    tensor.data = array
                else:
                    copy_transposed(tensor.data, array)
                tensor._version += 1
                assigned.add(id(tensor))


TILE = 128      # a 128 x 128 float32 tile is 64 KiB: source and destination tiles stay in cache


def copy_transposed(destination, source):
    """``np.copyto(destination, source)`` for a 2-D ``source`` that is a transposed view
    (``array.T``), done tile by tile.

    A plain copy of a transposed (in, out) array walks one of the two arrays with a stride of
    a whole row, so nearly every element read or written is a cache miss; tiles of TILE x TILE
    keep both sides of the copy in cache (measured 47 ms instead of 70 ms for GPT-2's
    768 x 3072 weights). Other arrays are copied by ``np.copyto`` directly."""
    if source.ndim != 2 or source.flags.c_contiguous:
        np.copyto(destination, source, casting="same_kind")
        return
    rows, columns = destination.shape
    for i in range(0, rows, TILE):
        for j in range(0, columns, TILE):
            np.copyto(destination[i:i + TILE, j:j + TILE], source[i:i + TILE, j:j + TILE],
                      casting="same_kind")


def _llama_state_from_hf(tensors):
    state = dict(tensors)
    if "lm_head.weight" not in state and "model.embed_tokens.weight" in state:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]     # tied embeddings
    return state


def _check_state(model, state, files, config_path):
    """PretrainedError for a tensor missing, unexpected, or of another shape than the model
    described by config.json needs; each message names the file."""
    # _state_items: the state_dict's names and tensors without copying 124M numbers
    expected = {name: tensor.shape for name, tensor in model._state_items()}
    anywhere = sorted(set(files.values()))
    where = anywhere[0] if len(anywhere) == 1 else "%s (%d shards)" % (anywhere[0].parent,
                                                                     len(anywhere))
    missing = [name for name in expected if name not in state or state[name] is None]
    if missing:
        raise PretrainedError("from_pretrained: %s lacks tensor(s) %s, which the model of %s "
                              "needs" % (where, ", ".join(missing[:5]), config_path))
    for name, array in state.items():
        if name not in expected:
            raise PretrainedError("from_pretrained: %s holds tensor %s, which the model of %s "
                                  "does not have" % (where, name, config_path))
        if array.shape != tuple(expected[name]):
            raise PretrainedError("from_pretrained: tensor %s in %s has shape %s, but the "
                                  "model that %s describes needs %s: the config does not "
                                  "match the weights" % (name, where, array.shape, config_path,
                                                         tuple(expected[name])))


def save_pretrained(model, folder, max_shard_size=None):
    """Write ``model`` (a tinyllm GPT or Llama) as a Hugging Face folder: ``config.json`` and
    ``model.safetensors`` (float32), which ``transformers``' ``from_pretrained`` and this
    module's ``from_pretrained`` read. With ``max_shard_size`` (bytes, or a string such as
    "200MB") the weights are split into shards listed in ``model.safetensors.index.json``."""
    if isinstance(model, GPT):
        hf, tensors = gpt_config_to_hf(model.config), gpt_state_to_hf(model)
    elif type(model).__name__ == "Llama":
        hf, tensors = llama_config_to_hf(model.config), model.state_dict()
        if model.config.tie_word_embeddings:
            tensors.pop("lm_head.weight", None)
    else:
        raise PretrainedError("save_pretrained: tinyllm writes GPT and Llama models in Hugging "
                              "Face's layout, not %s" % type(model).__name__)
    _safetensors()
    from safetensors.numpy import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: np.ascontiguousarray(array, dtype=np.float32)
               for name, array in tensors.items()}
    (folder / CONFIG_NAME).write_text(json.dumps(hf, indent=2) + "\n", encoding="utf-8")
    shards = _shards(tensors, _parse_size(max_shard_size))
    metadata = {"format": "pt"}         # transformers reads files marked with a framework
    if len(shards) == 1:
        save_file(shards[0], str(folder / WEIGHTS_NAME), metadata=metadata)
        return folder
    weight_map = {}
    for i, shard in enumerate(shards):
        name = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
        save_file(shard, str(folder / name), metadata=metadata)
        weight_map.update({tensor: name for tensor in shard})
    total = int(sum(array.nbytes for array in tensors.values()))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return folder


def _parse_size(size):
    """Bytes from an int or a string "10KB", "200MB", "5GB" (powers of 1000, as Hugging Face)
    or "1GiB" (powers of 1024)."""
    if size is None or isinstance(size, int):
        return size
    units = {"KIB": 2 ** 10, "MIB": 2 ** 20, "GIB": 2 ** 30, "KB": 10 ** 3, "MB": 10 ** 6,
             "GB": 10 ** 9, "B": 1}
    text = str(size).strip().upper()
    for unit, factor in units.items():
        if text.endswith(unit) and text[:-len(unit)].strip().isdigit():
            return int(text[:-len(unit)]) * factor
    raise ValueError("save_pretrained: max_shard_size must be a number of bytes or a size such "
                     "as '200MB', got %r" % (size,))


def _shards(tensors, max_bytes):
    """The tensors split, in order, into dicts of at most ``max_bytes`` each (a larger tensor
    gets a shard of its own)."""
    if max_bytes is None:
        return [tensors]
    shards, current, size = [], {}, 0
    for name, array in tensors.items():
        if current and size + array.nbytes > max_bytes:
            shards.append(current)
            current, size = {}, 0
        current[name] = array
        size += array.nbytes
    return shards + [current] if current else shards


def _required(hf, field, where):
    if field not in hf:
        raise PretrainedError("from_pretrained: %s has no %r field" % (where, field))
    return hf[field]


# ----- recognising a folder -----------------------------------------------------------------
def is_pretrained_folder(path):
    """True for a folder holding a Hugging Face ``config.json`` (not a tinyllm checkpoint)."""
    return Path(path).is_dir() and (Path(path) / CONFIG_NAME).is_file()
