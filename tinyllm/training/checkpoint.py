"""Checkpoints: everything needed to use a trained model or to resume its training, in one file.

The file format
---------------
A checkpoint is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays, readable with
``np.load(path)``) holding

- ``model/<name>``: the model's ``state_dict`` (``model/transformer.wte.weight``, ...);
- ``optimizer/<index>/<key>``: the optimizer's per-parameter arrays (AdamW's ``exp_avg`` and
  ``exp_avg_sq``), by parameter index as in ``Optimizer.state_dict``;
- ``header.json``: a JSON document (stored as bytes) with the format name and version, the
  model type and the arguments that build it, the training config, the tokenizer, the step,
  the random generator's state, the loss history, the optimizer's scalars (its parameter
  groups and per-parameter step counts), and for every array its dtype and shape plus a
  SHA-256 checksum of them all.

Loading checks the zip's own CRC-32s, the header's format and version, that every array the
header lists is present with its dtype and shape, and the checksum; a file cut short by a
crash or a full disk, or damaged later, raises ``CheckpointError("checkpoint X is truncated or
corrupt: ...")`` instead of loading garbage.

Writing is atomic: the archive goes to a temporary file in the same folder, is flushed to disk
(``fsync``) and then renamed over the old checkpoint. A rename within a folder is atomic, so a
run killed at any moment leaves either the old checkpoint or the new one, never a half-written
file.
"""

import hashlib
import json
import os
import uuid
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyllm.data import tokenizer_from_dict
from tinyllm.training.model_types import MODEL_BUILDERS, build_model

FORMAT = "tinyllm-checkpoint"
VERSION = 1
HEADER_KEY = "header.json"
CHECKPOINT_NAME = "ckpt.npz"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: truncated, corrupt, of another format or model type."""


@dataclass
class Checkpoint:
    """A checkpoint read back from disk (see ``load_checkpoint``)."""
    path: str
    model_type: str
    model_args: dict
    model_state: dict                       # name -> array, for model.load_state_dict
    tokenizer: object = None                # a CharTokenizer / ByteBPETokenizer, or None
    config: dict = field(default_factory=dict)
    step: int = 0
    rng_state: dict = None
    history: dict = field(default_factory=dict)
    optimizer_state: dict = None            # in Optimizer.state_dict's layout, or None
    extra: dict = field(default_factory=dict)

    def build_model(self):
        """The model with the checkpoint's weights, in eval mode."""
        model = build_model(self.model_type, self.model_args)
        try:
            model.load_state_dict(self.model_state)
        except (RuntimeError, ValueError) as error:
            raise CheckpointError("checkpoint %s does not fit a %s model built from its own "
                                  "arguments: %s" % (self.path, self.model_type,
                                                     str(error).replace("\n", " "))) from None
        return model.eval()

    def require_type(self, allowed, purpose):
        """Raise CheckpointError unless the model type is one of ``allowed``."""
        if self.model_type not in allowed:
            raise CheckpointError("checkpoint %s holds a %r model, but %s needs %s"
                                  % (self.path, self.model_type, purpose,
                                     " or ".join(repr(a) for a in allowed)))


# ----- writing ------------------------------------------------------------------------------
def save_checkpoint(path, model, model_type, model_args, tokenizer=None, optimizer=None,
                    config=None, step=0, rng_state=None, history=None, extra=None):
    """Write a checkpoint to ``path`` atomically (see the module docstring); returns the path.

    model_type: a key of ``MODEL_BUILDERS`` ("gpt", "lstm", ...); model_args: the JSON-ready
    keyword arguments that build the same model again. config, history and extra must be
    JSON-ready dicts; rng_state is ``tinyllm.random.get_rng_state()``.
    """
    if model_type not in MODEL_BUILDERS:
        raise ValueError("save_checkpoint: unknown model type %r; known: %s"
                         % (model_type, ", ".join(MODEL_BUILDERS)))
    arrays = {"model/" + name: value for name, value in model.state_dict().items()}
    optimizer_header = None
    if optimizer is not None:
        optimizer_arrays, optimizer_header = _split_optimizer_state(optimizer.state_dict())
        arrays.update(optimizer_arrays)
    header = {
        "format": FORMAT, "version": VERSION,
        "model_type": model_type, "model_args": model_args,
        "tokenizer": tokenizer.to_dict() if tokenizer is not None else None,
        "config": config or {}, "step": int(step), "rng_state": rng_state,
        "history": history or {}, "optimizer": optimizer_header, "extra": extra or {},
        "arrays": {name: [value.dtype.str, list(value.shape)] for name, value in arrays.items()},
        "sha256": arrays_checksum(arrays),
    }
    header_bytes = json.dumps(header, allow_nan=False).encode("utf-8")
    arrays[HEADER_KEY] = np.frombuffer(header_bytes, dtype=np.uint8)
    _write_atomically(Path(path), arrays)
    return Path(path)


def arrays_checksum(arrays):
    """SHA-256 over the arrays in name order: each one's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        digest.update(name.encode("utf-8"))
        digest.update(value.dtype.str.encode("ascii"))
        digest.update(repr(tuple(value.shape)).encode("ascii"))
        digest.update(value.tobytes())
    return digest.hexdigest()


def _split_optimizer_state(state_dict):
    """An optimizer state dict as (arrays for the archive, a JSON-ready rest)."""
    arrays, scalars = {}, {}
    for index, state in state_dict["state"].items():
        for key, value in state.items():
            if isinstance(value, np.ndarray):
                arrays["optimizer/%d/%s" % (index, key)] = value
            else:
                scalars.setdefault(str(index), {})[key] = _json_value(value)
    groups = [{key: _json_value(value) for key, value in group.items()}
              for group in state_dict["param_groups"]]
    return arrays, {"param_groups": groups, "scalars": scalars}


def _json_value(value):
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _write_atomically(path, arrays):
    """np.savez to a temporary file beside ``path``, fsync, rename over ``path``.

    The temporary name is unique to this process and call ("x" mode refuses to reuse one),
    and the file is created with the usual permissions (the umask applies, unlike with
    ``tempfile.mkstemp``, whose files only their owner can read).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("%s.%d.%s.tmp" % (path.name, os.getpid(), uuid.uuid4().hex[:8]))
    try:
        with open(tmp, "xb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----- reading ------------------------------------------------------------------------------
def load_checkpoint(path):
    """Read and verify a checkpoint (see the module docstring); returns a ``Checkpoint``.

    ``path`` may be the file or the folder it was saved in (then ``ckpt.npz`` inside it).
    Raises FileNotFoundError for a missing file and CheckpointError for anything unusable.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError("checkpoint %s does not exist" % path)
    header, arrays = _read_archive(path)
    _verify(path, header, arrays)
    try:
        tokenizer = (tokenizer_from_dict(header["tokenizer"], path)
                     if header.get("tokenizer") is not None else None)
    except ValueError as error:
        raise CheckpointError("checkpoint %s has an unusable tokenizer: %s"
                              % (path, error)) from None
    model_state = {name[len("model/"):]: value for name, value in arrays.items()
                   if name.startswith("model/")}
    return Checkpoint(path=str(path), model_type=header["model_type"],
                      model_args=header["model_args"], model_state=model_state,
                      tokenizer=tokenizer, config=header.get("config") or {},
                      step=int(header.get("step", 0)), rng_state=header.get("rng_state"),
                      history=header.get("history") or {},
                      optimizer_state=_join_optimizer_state(header.get("optimizer"), arrays),
                      extra=header.get("extra") or {})


def _corrupt(path, reason):
    return CheckpointError("checkpoint %s is truncated or corrupt: %s" % (path, reason))


def _read_archive(path):
    """(header dict, arrays dict) of the archive; CheckpointError when it cannot be read."""
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):       # a lone .npy array
            raise _corrupt(path, "it is not a zip archive of arrays")
        with archive:
            if HEADER_KEY not in archive.files:
                raise CheckpointError("%s is not a tinyllm checkpoint: it has no %s"
                                      % (path, HEADER_KEY))
            arrays = {name: archive[name] for name in archive.files}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as error:
        raise _corrupt(path, error) from None
    try:
        header = json.loads(arrays.pop(HEADER_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _corrupt(path, "its header is not valid JSON (%s)" % error) from None
    if not isinstance(header, dict):
        raise _corrupt(path, "its header is not a JSON object")
    return header, arrays


def _verify(path, header, arrays):
    if header.get("format") != FORMAT:
        raise CheckpointError("%s is not a tinyllm checkpoint (format %r, expected %r)"
                              % (path, header.get("format"), FORMAT))
    if header.get("version") != VERSION:
        raise CheckpointError("checkpoint %s has format version %r; this tinyllm reads version "
                              "%d" % (path, header.get("version"), VERSION))
    if header.get("model_type") not in MODEL_BUILDERS:
        raise CheckpointError("checkpoint %s holds an unknown model type %r; known: %s"
                              % (path, header.get("model_type"), ", ".join(MODEL_BUILDERS)))
    listed = header.get("arrays", {})
    missing = sorted(set(listed) - set(arrays))
    if missing:
        raise _corrupt(path, "arrays %s are missing" % ", ".join(missing[:5]))
    for name, (dtype, shape) in listed.items():
        value = arrays[name]
        if value.dtype.str != dtype or list(value.shape) != shape:
            raise _corrupt(path, "array %s is %s %s, its header says %s %s"
                           % (name, value.dtype.str, list(value.shape), dtype, shape))
    unlisted = sorted(set(arrays) - set(listed))
    if unlisted:
        raise _corrupt(path, "arrays %s are not in its header" % ", ".join(unlisted[:5]))
    if arrays_checksum(arrays) != header.get("sha256"):
        raise _corrupt(path, "the SHA-256 checksum of its arrays does not match its header")


def _join_optimizer_state(optimizer_header, arrays):
    """The optimizer state dict (Optimizer.state_dict's layout) from the header and arrays."""
    if optimizer_header is None:
        return None
    state = {}
    for index, scalars in optimizer_header["scalars"].items():
        state.setdefault(int(index), {}).update(scalars)
    for name, value in arrays.items():
        if name.startswith("optimizer/"):
            _, index, key = name.split("/", 2)
            state.setdefault(int(index), {})[key] = value
    groups = []
    for group in optimizer_header["param_groups"]:
        group = dict(group)
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def load_model(path, allowed_types=None, purpose="this command"):
    """(model in eval mode, checkpoint) from a checkpoint file or folder; ``allowed_types``
    (e.g. ("gpt", "lstm")) makes another model type a clear CheckpointError."""
    checkpoint = load_checkpoint(path)
    if allowed_types is not None:
        checkpoint.require_type(allowed_types, purpose)
    return checkpoint.build_model(), checkpoint
