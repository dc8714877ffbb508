"""Corpora that need no download, the train/validation split, and token files on disk.

Corpora (``load_corpus``)
-------------------------
- ``"pydoc"`` (the default): the help texts that ship with Python (``pydoc_data.topics``, what
  ``help("if")`` prints), joined in sorted key order: about 0.5 MB of English prose about Python.
- ``"stdlib"``: the standard library's own ``.py`` files, for a model of code (tests, site- and
  dist-packages left out).
- a path: a UTF-8 text file, or a folder whose text files are read recursively in sorted order.
  Built-in names win over a file of the same name in the working folder (write ``./pydoc``).

Token files (``save_tokens`` / ``load_tokens``)
-----------------------------------------------
A tokenized corpus is saved as a raw array of ids, ``NAME.bin``, plus a header ``NAME.json``
(``{"dtype": "uint16", "length": N, ...}``). ``load_tokens`` maps the ``.bin`` file into memory
(``np.memmap``), so a corpus larger than RAM can be batched without reading it all.
"""

import hashlib
import json
import os
import sysconfig
import tempfile
from pathlib import Path

import numpy as np

BUILTIN_CORPORA = ("pydoc", "stdlib")
STDLIB_MAX_BYTES = 1_000_000

_STDLIB_SKIPPED_FOLDERS = {"site-packages", "dist-packages", "test", "tests", "idle_test",
                           "__pycache__"}


def load_corpus(name_or_path="pydoc", max_bytes=None):
    """The text of a corpus: "pydoc", "stdlib", or the path of a text file or folder.

    max_bytes: for corpora made of many files ("stdlib", a folder), the most bytes of files to
    take (default: ``STDLIB_MAX_BYTES`` for "stdlib", everything for a folder). Files are taken
    whole, in a fixed order, skipping any that would overflow the limit.
    Raises FileNotFoundError for a missing path and ValueError for an empty or binary file or
    a folder without text files.
    """
    if isinstance(name_or_path, str) and name_or_path in BUILTIN_CORPORA:
        if name_or_path == "pydoc":
            return pydoc_corpus()
        return stdlib_corpus(STDLIB_MAX_BYTES if max_bytes is None else max_bytes)
    path = Path(name_or_path)
    if path.is_file():
        return read_text_file(path)
    if path.is_dir():
        return folder_corpus(path, max_bytes)
    raise FileNotFoundError("corpus %r not found: it is neither a built-in corpus (%s) nor an "
                            "existing file or folder" % (str(name_or_path),
                                                         ", ".join(BUILTIN_CORPORA)))


def pydoc_corpus():
    """Python's pydoc topics (``pydoc_data.topics.topics``), joined by blank lines in sorted key
    order, so the text is the same on every run."""
    from pydoc_data.topics import topics
    return "\n\n".join(topics[key] for key in sorted(topics))


def stdlib_corpus(max_bytes=STDLIB_MAX_BYTES):
    """The standard library's ``.py`` files, joined by blank lines.

    Which files, when they do not all fit in ``max_bytes``: the files are ordered by the SHA-1
    of their path relative to the library folder (a fixed shuffle, the same on every run and
    machine), so a capped corpus samples the whole library instead of the modules whose names
    start with "_" and "a". Files are taken whole in that order, skipping any that would
    overflow the limit. Files that are not UTF-8 are skipped.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise FileNotFoundError("stdlib corpus: the standard library folder %s does not exist"
                                % root)
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders
                               if d not in _STDLIB_SKIPPED_FOLDERS and not d.startswith("."))
        for name in sorted(names):
            # _sysconfigdata*.py is generated per machine: a dict of build flags, not code
            if name.endswith(".py") and not name.startswith("_sysconfigdata"):
                files.append(Path(folder, name))
    files.sort(key=lambda p: hashlib.sha1(p.relative_to(root).as_posix().encode()).hexdigest())
    texts = [text for _, text in _take_files(files, max_bytes)]
    if not texts:
        raise ValueError("stdlib corpus: no .py file of %s fits in max_bytes=%d"
                         % (root, max_bytes))
    return "\n\n".join(texts)


def folder_corpus(folder, max_bytes=None):
    """The text files of ``folder`` and its subfolders, in sorted path order, joined by blank
    lines. Hidden files and folders (names starting with ".") are left out, and so are files
    that are empty or not UTF-8 text (images, archives, ...)."""
    folder = Path(folder)
    files = []
    for parent, subfolders, names in os.walk(folder):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        files.extend(Path(parent, n) for n in sorted(names)       # FIFOs, devices: skipped
                     if not n.startswith(".") and Path(parent, n).is_file())
    files.sort(key=lambda p: p.relative_to(folder).parts)
    texts = [text for _, text in _take_files(files, max_bytes)]
    if not texts:
        limit = "" if max_bytes is None else " or fits in max_bytes=%d" % max_bytes
        raise ValueError("corpus folder %s has no text files%s (looked at %d files; empty "
                         "files, binary files and files that are not UTF-8 are skipped)"
                         % (folder, limit, len(files)))
    return "\n\n".join(texts)


def _take_files(files, max_bytes):
    """(path, text) for the files in order, whole, while their total size (with the "\\n\\n"
    between them) fits in ``max_bytes``; files that would overflow it are skipped."""
    total = 0
    for path in files:
        size = path.stat().st_size + (2 if total else 0)     # + the blank line that joins it
        if max_bytes is not None and total + size > max_bytes:
            continue
        try:
            text = read_text_file(path)
        except ValueError:                                  # empty, binary or not UTF-8
            continue
        total += size
        yield path, text


MAX_CORPUS_FILE_BYTES = 2 ** 30     # 1 GiB: a corpus file is read whole into memory
READ_CHUNK_BYTES = 2 ** 24


def read_text_file(path, max_bytes=None):
    """The text of a UTF-8 file, with clear errors for an empty or a binary file, for one that
    is not a regular file (a FIFO would block forever) and for one larger than ``max_bytes``
    (default ``MAX_CORPUS_FILE_BYTES``), which is read in chunks and never whole."""
    path = Path(path)
    limit = MAX_CORPUS_FILE_BYTES if max_bytes is None else max_bytes
    if not path.is_file():
        raise ValueError("corpus file %s is not a regular file (a FIFO, a device or a "
                         "socket); a corpus is read from ordinary files" % path)
    if path.stat().st_size > limit:
        raise ValueError("corpus file %s holds %d bytes, more than the %d a corpus file may "
                         "hold (its text and token ids must fit in memory); split it or take "
                         "a part of it" % (path, path.stat().st_size, limit))
    chunks, total = [], 0
    with open(path, "rb") as f:
        while chunk := f.read(READ_CHUNK_BYTES):
            total += len(chunk)
            if total > limit:                       # it grew while being read
                raise ValueError("corpus file %s holds more than %d bytes" % (path, limit))
            chunks.append(chunk)
    data = b"".join(chunks)
    if not data.strip():
        raise ValueError("corpus file %s is empty%s" % (path, "" if not data else
                                                         " (it holds only whitespace)"))
    if b"\x00" in data:
        raise ValueError("corpus file %s looks binary: it contains NUL bytes (first at byte %d); "
                         "a corpus must be UTF-8 text" % (path, data.index(b"\x00")))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError("corpus file %s is binary or not UTF-8 text: byte 0x%02x at offset %d "
                         "cannot be decoded (convert the file to UTF-8 first)"
                         % (path, data[error.start], error.start)) from None
    return text.removeprefix("\ufeff")            # a byte-order mark is not part of the text


def train_val_split(data, val_fraction=0.1):
    """(train, val): the first ``1 - val_fraction`` of ``data`` and the last ``val_fraction``.

    data: a str, list or array of tokens (a memmap stays a memmap: the parts are views).
    The split is at ``n_train = len(data) - int(len(data) * val_fraction)``, the same every run;
    taking the END as validation (as nanoGPT does) keeps the two parts from sharing windows.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError("train_val_split: val_fraction must be in [0, 1), got %r"
                         % (val_fraction,))
    n_val = int(len(data) * val_fraction)
    n_train = len(data) - n_val
    if n_train == 0:
        raise ValueError("train_val_split: %d items are too few to split" % len(data))
    return data[:n_train], data[n_train:]


# ----- token files --------------------------------------------------------------------------
def token_dtype(vocab_size):
    """The smallest unsigned dtype that holds ids in [0, vocab_size): uint16 up to 65536 ids
    (GPT-2's 50257 fit), uint32 beyond."""
    return np.dtype(np.uint16) if vocab_size <= 2 ** 16 else np.dtype(np.uint32)


def _token_paths(path):
    """(NAME.bin, NAME.json) for a path given as NAME, NAME.bin or NAME.json."""
    path = Path(path)
    if path.suffix in (".bin", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".bin"), path.with_name(path.name + ".json")


def save_tokens(path, ids, vocab_size=None):
    """Write ``ids`` to ``NAME.bin`` (raw, uint16 or uint32) and the header ``NAME.json``.

    vocab_size: picks the dtype (``token_dtype``); default max(ids) + 1. Both files are written
    to temporary names first and then renamed, so an interrupted save never leaves a corrupt
    file in place of a good one. Returns the path of the ``.bin`` file.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError("save_tokens: expected a non-empty 1-d sequence of ids, got shape %s"
                         % (ids.shape,))
    if ids.dtype.kind not in "iu":
        raise TypeError("save_tokens: token ids must be integers, got dtype %s" % ids.dtype)
    low, high = int(ids.min()), int(ids.max())
    if vocab_size is None:
        vocab_size = high + 1
    if low < 0 or high >= vocab_size:
        raise ValueError("save_tokens: ids must lie in [0, vocab_size=%d), found %d"
                         % (vocab_size, low if low < 0 else high))
    dtype = token_dtype(vocab_size)
    bin_path, header_path = _token_paths(path)
    header = {"format": "tinyllm-tokens", "version": 1, "dtype": dtype.name,
              "length": int(ids.size), "vocab_size": int(vocab_size)}
    _write_atomically(bin_path, ids.astype(dtype).tobytes())
    _write_atomically(header_path, (json.dumps(header, indent=1) + "\n").encode())
    return bin_path


def load_tokens(path):
    """The ids saved by ``save_tokens``, as a read-only ``np.memmap`` (``path``: NAME, NAME.bin
    or NAME.json). A ``.bin`` whose size does not match the header raises a ValueError."""
    bin_path, header_path = _token_paths(path)
    for p in (bin_path, header_path):
        if not p.is_file():
            raise FileNotFoundError("load_tokens: %s does not exist (a token file is a pair: "
                                    "%s and %s, written by save_tokens)"
                                    % (p, bin_path.name, header_path.name))
    try:
        header = json.loads(header_path.read_text(encoding="utf-8"))
        dtype = np.dtype(header["dtype"])
        length = int(header["length"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError("load_tokens: the header %s is corrupt (%s)" % (header_path, error)) \
            from None
    if dtype not in (np.dtype(np.uint16), np.dtype(np.uint32)) or length <= 0:
        raise ValueError("load_tokens: the header %s is corrupt (dtype %s, length %d)"
                         % (header_path, dtype, length))
    expected = length * dtype.itemsize
    actual = bin_path.stat().st_size
    if actual != expected:
        raise ValueError("load_tokens: %s is truncated or corrupt: its header says %d tokens of "
                         "%s (%d bytes) but the file holds %d bytes"
                         % (bin_path, length, dtype.name, expected, actual))
    return np.memmap(bin_path, dtype=dtype, mode="r", shape=(length,))


def _write_atomically(path, data):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
