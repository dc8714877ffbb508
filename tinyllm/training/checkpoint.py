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
  SHA-256 checksum of the header's other fields and all the arrays (format version 2; version
  1's checksum left the header out).

Loading trusts nothing in the file, which may come from a stranger, and decompresses nothing
before it is checked (a 7 MB archive can hold a 6 GiB array of zeros):

1. the header: at most ``MAX_HEADER_BYTES``, JSON without NaN/Infinity nested at most
   ``MAX_HEADER_DEPTH`` deep, and every field of the type and range ``HEADER_SCHEMA`` says;
2. the model its arguments describe: its size estimated from the arguments
   (``memory.estimate_parameters``) within ``max_bytes``, then built, so that every array's
   declared shape is checked against the model's own;
3. every zip entry: its ``.npy`` header (the first bytes of its stream) must agree with the
   checkpoint's header and with the entry's size in the zip directory, and all entries
   together must fit in ``max_bytes`` (``MAX_CHECKPOINT_BYTES`` unless raised);
4. only then the arrays are decompressed (the zip's CRC-32s checked), and the checksum and
   the finiteness of every float array (a diverged run's NaN weights) are verified.

A file cut short by a crash or a full disk, damaged later, or forged raises a one-line
``CheckpointError`` ("checkpoint X is truncated or corrupt: ...", "... has a malformed
header: ...") instead of loading garbage or allocating what the machine does not have.

Writing is atomic: the archive goes to a temporary file in the same folder, is flushed to disk
(``fsync``) and then renamed over the old checkpoint. A rename within a folder is atomic, so a
run killed at any moment leaves either the old checkpoint or the new one, never a half-written
file.
"""

import hashlib
import json
import math
import os
import uuid
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyllm import random
from tinyllm.data import tokenizer_from_dict
from tinyllm.training.config import TrainConfig
from tinyllm.training.memory import BYTES_PER_NUMBER, estimate_parameters, format_bytes
from tinyllm.training.model_types import MODEL_BUILDERS, build_model

FORMAT = "tinyllm-checkpoint"
VERSION = 2                         # 2: the checksum covers the header too
HEADER_KEY = "header.json"
CHECKPOINT_NAME = "ckpt.npz"
MAX_CHECKPOINT_BYTES = 2 * 2 ** 30  # arrays decompressed at most (--max-checkpoint-bytes)
MAX_HEADER_BYTES = 64 * 2 ** 20     # the header's JSON at most
MAX_HEADER_DEPTH = 16               # lists and objects nested at most, in the header
READ_CHUNK_BYTES = 16 * 2 ** 20     # arrays are decompressed this much at a time


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
    }
    header = json.loads(json.dumps(header, allow_nan=False))       # tuples -> lists, as read
    header["sha256"] = checkpoint_checksum(header, arrays)
    header_bytes = json.dumps(header, allow_nan=False).encode("utf-8")
    arrays[HEADER_KEY] = np.frombuffer(header_bytes, dtype=np.uint8)
    _write_atomically(Path(path), arrays)
    return Path(path)


def checkpoint_checksum(header, arrays):
    """SHA-256 over the header (every field but "sha256", as canonical JSON: sorted keys, no
    spaces) followed by the arrays as ``arrays_checksum`` feeds them."""
    digest = hashlib.sha256()
    rest = {key: value for key, value in header.items() if key != "sha256"}
    digest.update(json.dumps(rest, sort_keys=True, separators=(",", ":"),
                             allow_nan=False).encode("utf-8"))
    _update_with_arrays(digest, arrays)
    return digest.hexdigest()


def arrays_checksum(arrays):
    """SHA-256 over the arrays in name order: each one's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    _update_with_arrays(digest, arrays)
    return digest.hexdigest()


def _update_with_arrays(digest, arrays):
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        digest.update(name.encode("utf-8"))
        digest.update(value.dtype.str.encode("ascii"))
        digest.update(repr(tuple(value.shape)).encode("ascii"))
        digest.update(value.tobytes())


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
def load_checkpoint(path, max_bytes=None):
    """Read and verify a checkpoint (see the module docstring); returns a ``Checkpoint``.

    ``path`` may be the file or the folder it was saved in (then ``ckpt.npz`` inside it).
    max_bytes: the most bytes of arrays to decompress (default ``MAX_CHECKPOINT_BYTES``).
    Raises FileNotFoundError for a missing file and CheckpointError for anything unusable.

    Nothing is decompressed before it is known to be sound: first the header (its size, its
    JSON, its schema), then every array's zip entry and ``.npy`` header against the header's
    list and the model its arguments describe, and the total against ``max_bytes``; only
    then the arrays, whose checksum (with the header's) and finiteness are checked last.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError("checkpoint %s does not exist" % path)
    max_bytes = MAX_CHECKPOINT_BYTES if max_bytes is None else max_bytes
    try:
        with zipfile.ZipFile(path) as archive:
            members = _members(path, archive)
            header = _read_header(path, archive, members.pop(HEADER_KEY))
            tokenizer = _check_header(path, header)
            expected = _expected_shapes(path, header, max_bytes)
            layouts = _check_members(path, archive, members, header, expected, max_bytes)
            arrays = {name: _read_array(path, archive, members[name], layouts[name])
                      for name in sorted(members)}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
            NotImplementedError, RuntimeError, OverflowError) as error:
        raise _corrupt(path, error) from None
    if checkpoint_checksum(header, arrays) != header["sha256"]:
        raise _corrupt(path, "the SHA-256 checksum of its header and arrays does not match")
    for name, value in arrays.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise CheckpointError("checkpoint %s holds NaN or infinite numbers in %s: its "
                                  "training diverged; use an earlier checkpoint or train "
                                  "again with a smaller --lr" % (path, name))
    model_state = {name[len("model/"):]: value for name, value in arrays.items()
                   if name.startswith("model/")}
    return Checkpoint(path=str(path), model_type=header["model_type"],
                      model_args=header["model_args"], model_state=model_state,
                      tokenizer=tokenizer, config=header["config"], step=header["step"],
                      rng_state=header["rng_state"], history=header["history"],
                      optimizer_state=_join_optimizer_state(header["optimizer"], arrays),
                      extra=header["extra"])


def _corrupt(path, reason):
    return CheckpointError("checkpoint %s is truncated or corrupt: %s" % (path, reason))


def _malformed(path, reason):
    return CheckpointError("checkpoint %s has a malformed header: %s" % (path, reason))


def _members(path, archive):
    """{array name: ZipInfo} of the archive, the header's entry included."""
    members = {}
    for info in archive.infolist():
        name = info.filename
        if not name.endswith(".npy"):
            raise _corrupt(path, "its zip entry %r is not a .npy array" % name[:100])
        if name[:-4] in members:
            raise _corrupt(path, "its zip entry %r appears twice" % name[:100])
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _corrupt(path, "its zip entry %r uses compression method %d (a tinyllm "
                                 "checkpoint is stored or deflated)" % (name[:100],
                                                                        info.compress_type))
        members[name[:-4]] = info
    if HEADER_KEY not in members:
        raise CheckpointError("%s is not a tinyllm checkpoint: it has no %s"
                              % (path, HEADER_KEY))
    return members


def _read_header(path, archive, info):
    """The header dict, after bounding its size and its JSON's nesting."""
    layout = _array_layout(path, archive, info, HEADER_KEY)
    dtype, shape = layout[0], layout[1]
    if dtype != np.dtype(np.uint8) or len(shape) != 1:
        raise _corrupt(path, "its header is a %s array of shape %s, not bytes"
                       % (dtype, list(shape)))
    if info.file_size > MAX_HEADER_BYTES:
        raise _corrupt(path, "its header declares %d bytes, more than the %d a header may hold"
                       % (info.file_size, MAX_HEADER_BYTES))
    text = _read_array(path, archive, info, layout).tobytes()

    def refuse_constant(name):
        raise ValueError("%s is not a JSON number" % name)
    try:
        header = json.loads(text.decode("utf-8"), parse_constant=refuse_constant)
    except RecursionError:
        raise _malformed(path, "its JSON is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise _corrupt(path, "its header is not valid JSON (%s)" % error) from None
    depth = _nesting_depth(header)
    if depth > MAX_HEADER_DEPTH:
        raise _malformed(path, "its JSON is nested %d deep, more than %d"
                         % (depth, MAX_HEADER_DEPTH))
    if not isinstance(header, dict):
        raise _corrupt(path, "its header is not a JSON object")
    return header


def _nesting_depth(value):
    """How deeply lists and dicts nest in ``value`` (a loop, not recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, dict)):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict)
                                                   else value))
    return deepest


# The header's schema: each field and the check its value must pass (value -> bool).
def _is_int(value, low=0, high=2 ** 62):
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_number(value):
    return (isinstance(value, float) and math.isfinite(value)) or _is_int(value, -2 ** 62)


def _is_scalar(value):
    return value is None or isinstance(value, (bool, str)) or _is_number(value)


def _is_dict(value, check_value=lambda v: True):
    return isinstance(value, dict) and all(check_value(v) for v in value.values())


HEADER_SCHEMA = {
    "format": (lambda v: isinstance(v, str), "a string"),
    "version": (_is_int, "an integer"),
    "model_type": (lambda v: v in MODEL_BUILDERS, "one of %s" % ", ".join(MODEL_BUILDERS)),
    "model_args": (lambda v: _is_dict(v, _is_scalar), "an object of numbers, strings and "
                                                      "booleans"),
    "tokenizer": (lambda v: v is None or isinstance(v, dict), "an object or null"),
    "config": (lambda v: isinstance(v, dict), "an object"),
    "step": (_is_int, "an integer >= 0"),
    "rng_state": (lambda v: v is None or isinstance(v, dict), "an object or null"),
    "history": (lambda v: _is_dict(v, lambda values: isinstance(values, list) and
                                   all(_is_number(x) for x in values)),
                "an object of lists of numbers"),
    "optimizer": (lambda v: v is None or (
        isinstance(v, dict) and set(v) == {"param_groups", "scalars"}
        and isinstance(v["param_groups"], list)
        and all(_is_dict(g) and _is_int_list(g.get("params")) for g in v["param_groups"])
        and _is_dict(v["scalars"], lambda s: _is_dict(s, _is_scalar))
        and all(_is_int(_int_or_none(k)) for k in v["scalars"])),
        "null or {param_groups: [{params: [indices], ...}], scalars: {index: {...}}}"),
    "extra": (lambda v: isinstance(v, dict), "an object"),
    "arrays": (lambda v: _is_dict(v, lambda a: isinstance(a, list) and len(a) == 2
                                  and isinstance(a[0], str) and _is_int_list(a[1])),
               "an object of [dtype, shape] pairs"),
    "sha256": (lambda v: isinstance(v, str) and len(v) == 64
               and all(c in "0123456789abcdef" for c in v), "64 hexadecimal digits"),
}


def _is_int_list(value):
    return isinstance(value, list) and all(_is_int(x) for x in value)


def _int_or_none(text):
    return int(text) if isinstance(text, str) and text.isdigit() and len(text) < 10 else None


def _check_header(path, header):
    """Check the header against HEADER_SCHEMA, its format, version, config, random state and
    tokenizer; returns the tokenizer (or None)."""
    if header.get("format") != FORMAT:
        raise CheckpointError("%s is not a tinyllm checkpoint (format %r, expected %r)"
                              % (path, header.get("format"), FORMAT))
    if header.get("version") != VERSION:
        old = " (written by an older tinyllm whose checksum left out the header; train it " \
              "again or load it with that version)" if header.get("version") == 1 else ""
        raise CheckpointError("checkpoint %s has format version %r; this tinyllm reads version "
                              "%d%s" % (path, header.get("version"), VERSION, old))
    for key, (check, expected) in HEADER_SCHEMA.items():
        if key not in header:
            raise _malformed(path, "it has no %r" % key)
        if not check(header[key]):
            raise _malformed(path, "%r must be %s, got %s" % (key, expected,
                                                              _preview(header[key])))
    unknown = sorted(set(header) - set(HEADER_SCHEMA))
    if unknown:
        raise _malformed(path, "unknown field(s) %s" % ", ".join(map(repr, unknown[:5])))
    if header["config"]:
        try:
            TrainConfig.from_dict(header["config"])
        except (ValueError, TypeError) as error:
            raise _malformed(path, "its training config is unusable: %s" % error) from None
    if header["rng_state"] is not None:
        try:
            np.random.PCG64().state = header["rng_state"]
        except (ValueError, TypeError, KeyError, OverflowError) as error:
            raise _malformed(path, "its random-generator state is unusable: %r" % error) \
                from None
    if header["tokenizer"] is None:
        return None
    try:
        return tokenizer_from_dict(header["tokenizer"], path)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
        raise CheckpointError("checkpoint %s has an unusable tokenizer: %s"
                              % (path, error)) from None


def _preview(value):
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected_shapes(path, header, max_bytes):
    """{array name: allowed shapes} from the model the header's arguments build, after
    estimating (without allocating anything) that it fits in ``max_bytes``."""
    model_type, model_args = header["model_type"], header["model_args"]
    needed = BYTES_PER_NUMBER * estimate_parameters(model_type, model_args)
    if needed > max_bytes:
        raise CheckpointError("checkpoint %s describes a %s model of about %s, more than the "
                              "%s this command loads (--max-checkpoint-bytes raises the limit)"
                              % (path, model_type, format_bytes(needed),
                                 format_bytes(max_bytes)))
    rng_state = random.get_rng_state()         # building draws initial weights: undo that
    try:
        model = build_model(model_type, model_args)
    except (ValueError, TypeError, AssertionError, ZeroDivisionError, OverflowError,
            MemoryError) as error:
        raise CheckpointError("checkpoint %s: its model arguments cannot build a %s model: %s"
                              % (path, model_type, error)) from None
    finally:
        random.set_rng_state(rng_state)
    model_shapes = {"model/" + name: [tuple(value.shape)]
                    for name, value in model.state_dict().items()}
    parameter_shapes = sorted({tuple(p.shape) for p in model.parameters()})
    expected = dict(model_shapes)
    for name in header["arrays"]:
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == "optimizer" and parts[1].isdigit() \
                and int(parts[1]) < len(list(model.parameters())):
            expected[name] = parameter_shapes
    unexpected = sorted(set(header["arrays"]) - set(expected))
    if unexpected:
        raise CheckpointError("checkpoint %s does not fit a %s model built from its own "
                              "arguments: unexpected arrays %s"
                              % (path, model_type, ", ".join(unexpected[:5])))
    for name, (dtype, shape) in header["arrays"].items():
        if tuple(shape) not in expected[name]:
            raise CheckpointError("checkpoint %s does not fit a %s model built from its own "
                                  "arguments: %s has shape %s, the model needs %s"
                                  % (path, model_type, name, tuple(shape),
                                     " or ".join(map(str, expected[name][:3]))))
    return expected


def _array_layout(path, archive, info, name):
    """(dtype, shape, fortran_order, data bytes) of a zip entry, from its .npy header: the
    first bytes of the stream, nothing more is decompressed."""
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise _corrupt(path, "array %s has .npy format version %s" % (name, version))
        offset = f.tell()
    if dtype.kind not in "fiub" or dtype.hasobject:
        raise _corrupt(path, "array %s has dtype %s; a checkpoint holds only numbers"
                       % (name, dtype))
    nbytes = math.prod(shape) * dtype.itemsize
    if offset + nbytes != info.file_size:
        raise _corrupt(path, "array %s declares shape %s (%d bytes) but its zip entry holds "
                             "%d bytes" % (name, tuple(shape), nbytes, info.file_size - offset))
    return dtype, tuple(shape), fortran_order, nbytes


def _check_members(path, archive, members, header, expected, max_bytes):
    """Each zip entry's .npy header against the checkpoint header; the total size against
    ``max_bytes``; returns {name: layout}."""
    listed = header["arrays"]
    missing = sorted(set(listed) - set(members))
    if missing:
        raise _corrupt(path, "arrays %s are missing" % ", ".join(missing[:5]))
    unlisted = sorted(set(members) - set(listed))
    if unlisted:
        raise _corrupt(path, "arrays %s are not in its header" % ", ".join(unlisted[:5]))
    total = sum(info.file_size for info in members.values())
    if total > max_bytes:
        raise CheckpointError("checkpoint %s holds %s of arrays, more than the %s this command "
                              "loads (--max-checkpoint-bytes raises the limit)"
                              % (path, format_bytes(total), format_bytes(max_bytes)))
    layouts = {}
    for name, info in members.items():
        layout = layouts[name] = _array_layout(path, archive, info, name)
        dtype, shape = listed[name]
        if layout[0].str != dtype or list(layout[1]) != shape:
            raise _corrupt(path, "array %s is %s %s, its header says %s %s"
                           % (name, layout[0].str, list(layout[1]), dtype, shape))
    return layouts


def _read_array(path, archive, info, layout):
    """Decompress one array whose layout was checked, in chunks, into its own memory."""
    dtype, shape, fortran_order, nbytes = layout
    array = np.empty(shape[::-1] if fortran_order else shape, dtype=dtype)
    flat = array.reshape(-1).view(np.uint8)
    with archive.open(info) as f:
        f.read(info.file_size - nbytes)                     # the .npy header, checked before
        done = 0
        while done < nbytes:
            chunk = f.read(min(READ_CHUNK_BYTES, nbytes - done))
            if not chunk:
                raise _corrupt(path, "array %s ends after %d of its %d bytes"
                               % (info.filename, done, nbytes))
            flat[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            done += len(chunk)
        if f.read(1):                                       # also checks the CRC-32
            raise _corrupt(path, "array %s holds more bytes than it declares" % info.filename)
    return array.T if fortran_order else array


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


def load_model(path, allowed_types=None, purpose="this command", max_bytes=None):
    """(model in eval mode, checkpoint) from a checkpoint file or folder; ``allowed_types``
    (e.g. ("gpt", "lstm")) makes another model type a clear CheckpointError; ``max_bytes``
    as in ``load_checkpoint``."""
    checkpoint = load_checkpoint(path, max_bytes)
    if allowed_types is not None:
        checkpoint.require_type(allowed_types, purpose)
    return checkpoint.build_model(), checkpoint
