"""Every code block of README.md and of the chapters (chapters/*.md) runs, as a reader would run
it, and where a document shows a block's output the test compares it.

To see the count, run ``python -m pytest tests/test_docs.py``: the summary ends with a line
"docs: N code blocks run, M marked not run" (``pytest_terminal_summary`` in conftest.py), and
``test_every_code_block_is_run_or_marked_not_run`` checks that the two add up to the blocks found.

The blocks are found with Sybil's Markdown lexers (``sybil`` from the ``dev`` extra). The rules:

- **Which blocks are code.** A ```` ```python ```` block; a ```` ```bash ```` (``sh``, ``shell``,
  ``console``) block; a fence with no language whose first line is a command (``tinyllm``,
  ``python``, ``cd``, ``pip``, ``curl``). Every other block (``mermaid``, pseudocode, printed
  text) is prose and is not run.
- **Not run**, visibly and rarely: an HTML comment on the line before the fence,
  ``<!-- not run: WHY -->``, with its reason. The test of such a block is skipped with that reason.
- **Python blocks** run each on its own, as a file, in a fresh interpreter and an empty folder:
  a snippet must bring its imports and its data.
- **Shell blocks** run line by line (``&&`` splits a line; ``#`` starts a comment).
  ``tinyllm ...`` and ``python -m tinyllm...`` run (with this interpreter); ``cd DIR`` changes
  the folder of the blocks that follow; ``pip ...`` is skipped with a note (the fresh-install test,
  tests/test_fresh_install.py, runs the README's set-up); anything else fails, asking for a rule
  or a marker. The blocks of one "reader" share a terminal, in reading order: README.md is one
  reader, starting in a folder where ``tinyllm train`` has left a tiny checkpoint
  ``out/gpt/ckpt.npz`` (the ``readme_checkpoint`` fixture, 3 steps of a 1-layer model); the
  chapters, 01 to the last, are the other, starting in an empty folder (chapter 1's
  ``init my-tinyllm`` and ``cd my-tinyllm`` make the folder the later chapters work in). So the
  blocks depend on the earlier ones of their reader: run the whole file, not one block with -k.
- **Long commands are shortened** (``SHORTER`` below): ``tinyllm train`` gets a few steps of a
  tiny model, ``tinyllm bench`` lists the benchmarks instead of running them (minutes), and
  ``tinyllm serve`` (which runs until stopped) takes any free port, answers ``GET /health``, and
  is stopped.
- **Exit status.** Every command must exit 0, except where the block is marked
  ``<!-- exits N: WHY -->`` (every command of the block exits N) or ``<!-- WORD exits N: WHY -->``
  (the commands that contain the word WORD, e.g. ``check``, exit N; the others 0). A command
  expected to fail must still not end in a Python traceback: the course's ``check STEP`` on an
  unwritten stub exits 1 after its FAIL lines, a crash would exit 1 too.
- **Output.** A fence tagged ```` ```output ```` right after a code block holds what that block
  prints (its standard output); it is compared as doctest compares, with ``...`` matching
  anything and runs of whitespace equal.

Time: 69 s on 2 cores with a warm Numba cache, with the machine busy with other jobs (load
average 11); it is marked slow.
"""

import doctest
import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sybil import Document, Region
from sybil.parsers.markdown.lexers import DirectiveInHTMLCommentLexer, RawFencedCodeBlockLexer

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md"] + sorted((ROOT / "chapters").glob("*.md"))

SHELL_LANGUAGES = {"bash", "sh", "shell", "console", "zsh"}
COMMAND_WORDS = {"tinyllm", "python", "python3", "cd", "pip", "curl"}

# Options added to a command the documents show at full length (minutes) when the command does
# not already give them.
TINY_TRAINING = ["--steps", "3", "--n-layer", "1", "--n-embd", "32", "--eval-every", "3",
                 "--eval-batches", "2", "--sample-tokens", "20", "--no-progress"]
SHORTER = {"train": TINY_TRAINING, "bench": ["--list"]}

pytestmark = pytest.mark.slow


# ----- finding the blocks --------------------------------------------------------------------
@dataclass
class Block:
    path: Path
    line: int
    kind: str                 # "python", "shell", "output" or "text"
    source: str
    not_run: str = None       # the reason, when marked <!-- not run: ... -->
    exits: list = field(default_factory=list)    # [(word or None, status, reason)]
    output: "Block" = None    # the ```output block that follows it

    @property
    def name(self):
        return "%s:%d" % (self.path.relative_to(ROOT).as_posix(), self.line)

    @property
    def is_code(self):
        return self.kind in ("python", "shell")

    @property
    def is_quoted_code(self):
        return self.kind in ("quoted python", "quoted shell")


def kind_of(info, source):
    language = info.strip().split()[0].lower() if info.strip() else ""
    if language in ("python", "py"):
        return "python"
    if language in SHELL_LANGUAGES:
        return "shell"
    if language == "output":
        return "output"
    if language == "":
        first = next((line.split()[0] for line in source.splitlines() if line.strip()), "")
        if first in COMMAND_WORDS:
            return "shell"
    return "text"


def fences(document):
    lexer = RawFencedCodeBlockLexer(info_pattern=re.compile(r"(?P<info>[^\n]*)\n"))
    for region in lexer(document):
        source = str(region.lexemes["source"])
        kind = kind_of(region.lexemes["info"], source)
        if document.text[region.start:region.end].lstrip(" \t").startswith(">"):
            kind = "quoted " + kind
        region.parsed = ("fence", kind, source)
        yield region


def markers(document):
    lexer = DirectiveInHTMLCommentLexer(directive=r"not run|(?:[\w-]+ )?exits \d+",
                                        arguments=r".*?")
    for region in lexer(document):
        region.parsed = ("marker", region.lexemes["directive"],
                         region.lexemes["arguments"].strip())
        yield region


def blocks_of(path):
    """The fenced blocks of one Markdown file, with their markers and output blocks attached."""
    document = Document.parse(str(path), fences, markers)
    found, pending, previous_end = [], [], None
    for example in document:
        what = example.parsed
        between = document.text[previous_end:example.start] if previous_end is not None else ""
        if what[0] == "marker":
            pending.append((what[1], what[2], example.line))
            previous_end = example.end
            continue
        block = Block(path, example.line, what[1], what[2])
        if pending and re.sub(r"^\s*--+>", "", between).strip():
            raise AssertionError("%s:%d: the marker must be on the line right before a fence"
                                 % (path, pending[-1][2]))
        for directive, reason, line in pending:
            if not reason:
                raise AssertionError("%s:%d: <!-- %s: ... --> needs its reason"
                                     % (path, line, directive))
            if not block.is_code:
                raise AssertionError("%s:%d: a marker before a block that is not code"
                                     % (path, line))
            if directive == "not run":
                block.not_run = reason
            else:
                word, status = re.fullmatch(r"(?:([\w-]+) )?exits (\d+)", directive).groups()
                block.exits.append((word, int(status), reason))
        pending = []
        if block.kind == "output":
            if not found or not found[-1].is_code or between.strip():
                raise AssertionError("%s: an ```output block must follow a code block directly"
                                     % block.name)
            found[-1].output = block
        found.append(block)
        previous_end = example.end
    if pending:
        raise AssertionError("%s:%d: a marker with no block after it" % (path, pending[-1][2]))
    return found


ALL_BLOCKS = [b for path in DOCUMENTS for b in blocks_of(path)]
CODE_BLOCKS = [b for b in ALL_BLOCKS if b.is_code]
QUOTED_BLOCKS = [b for b in ALL_BLOCKS if b.is_quoted_code]


def count_blocks():
    """(code blocks found, to run, marked not run, quoted) over all the documents."""
    return (len(CODE_BLOCKS), sum(b.not_run is None for b in CODE_BLOCKS),
            sum(b.not_run is not None for b in CODE_BLOCKS), len(QUOTED_BLOCKS))


# ----- running them --------------------------------------------------------------------------
def environment():
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    return env


def run(argv, cwd, timeout=300):
    return subprocess.run(argv, cwd=cwd, env=environment(), capture_output=True, text=True,
                          timeout=timeout)


def expected_status(block, words):
    for word, status, _ in block.exits:
        if word is None or word in words:
            return status
    return 0


def check_status(block, shown, result, status):
    both = result.stdout + result.stderr
    assert result.returncode == status, "%s: `%s` exited %d, expected %d\n%s" % (
        block.name, shown, result.returncode, status, both[-3000:])
    if status != 0:
        assert "Traceback" not in both, "%s: `%s` crashed\n%s" % (block.name, shown,
                                                                   both[-3000:])


def check_output(block, printed):
    if block.output is None:
        return
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    want = block.output.source
    assert checker.check_output(want, printed, flags), "%s: the output shown at %s\n%s" % (
        block.name, block.output.name,
        checker.output_difference(doctest.Example("", want), printed, flags))


def command_lines(source):
    """The commands of a shell block: one per line (a trailing backslash continues a line),
    split at ``&&``, comments dropped."""
    joined = re.sub(r"\\\n", " ", source)
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        while words:
            if "&&" in words:
                cut = words.index("&&")
                yield words[:cut]
                words = words[cut + 1:]
            else:
                yield words
                words = []


def as_tinyllm(words):
    """argv for ``tinyllm ...`` or ``python -m tinyllm...``, shortened per SHORTER, or None."""
    if words[0] == "tinyllm":
        args = words[1:]
        module = "tinyllm"
    elif words[0] in ("python", "python3") and words[1:2] == ["-m"] and len(words) > 2 \
            and words[2].split(".")[0] == "tinyllm":
        module, args = words[2], words[3:]
    else:
        return None
    if module == "tinyllm" and args and args[0] in SHORTER and "--steps" not in args \
            and "--list" not in args:
        given = set(args)
        extra = SHORTER[args[0]]
        pairs = [extra[i:i + 2] if i + 1 < len(extra) and not extra[i + 1].startswith("--")
                 else extra[i:i + 1] for i in range(len(extra)) if extra[i].startswith("--")]
        args = args + [word for pair in pairs if pair[0] not in given for word in pair]
    return [sys.executable, "-m", module] + args


def serve(block, argv, cwd):
    """``tinyllm serve`` runs until stopped: start it on a free port, ask ``GET /health``, stop it."""
    if "--port" not in argv:
        argv = argv + ["--port", "0"]
    server = subprocess.Popen(argv, cwd=cwd, env=environment(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        line = server.stdout.readline()
        address = re.search(r"http://[\w.]+:\d+", line)
        assert address, "%s: tinyllm serve printed %r" % (block.name, line)
        with urllib.request.urlopen(address.group(0) + "/health", timeout=30) as response:
            assert json.load(response)["status"] == "ok"
    finally:
        server.terminate()
        server.wait(timeout=30)
    return line


class Reader:
    """One reader's terminal: the folder the next command runs in."""

    def __init__(self, folder):
        self.cwd = Path(folder)
        self.notes = []

    def run_shell(self, block):
        printed = []
        for words in command_lines(block.source):
            shown = " ".join(words)
            if words[0] == "cd":
                target = (self.cwd / words[1]).resolve()
                assert target.is_dir(), (
                    "%s: `%s`: no folder %s (the blocks run in reading order; run the whole "
                    "file)" % (block.name, shown, target))
                self.cwd = target
                continue
            if words[0] == "pip":
                self.notes.append("%s: skipped `%s`" % (block.name, shown))
                continue
            argv = as_tinyllm(words)
            assert argv is not None, (
                "%s: tests/test_docs.py does not know how to run `%s`: give it a rule there, or "
                "mark the block <!-- not run: WHY -->" % (block.name, shown))
            if argv[2:4] == ["tinyllm", "serve"]:
                printed.append(serve(block, argv, self.cwd))
                continue
            result = run(argv, self.cwd)
            check_status(block, shown, result, expected_status(block, words))
            printed.append(result.stdout)
        check_output(block, "".join(printed))


def run_python(block, folder):
    script = Path(folder) / "snippet.py"
    script.write_text(block.source)
    result = run([sys.executable, str(script)], folder)
    check_status(block, "python snippet", result, expected_status(block, []))
    check_output(block, result.stdout)


@pytest.fixture(scope="session")
def readme_checkpoint(tmp_path_factory):
    """A folder where ``tinyllm train`` (3 steps of a 1-layer model) wrote out/gpt/ckpt.npz."""
    folder = tmp_path_factory.mktemp("readme")
    result = run([sys.executable, "-m", "tinyllm", "train"] + TINY_TRAINING, folder)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (folder / "out" / "gpt" / "ckpt.npz").exists()
    return folder


@pytest.fixture(scope="session")
def readers(tmp_path_factory):
    """The two readers' terminals, each made when its first block runs."""
    made = {}

    def reader(name, request):
        if name not in made:
            start = (request.getfixturevalue("readme_checkpoint") if name == "README.md"
                     else tmp_path_factory.mktemp("chapters"))
            made[name] = Reader(start)
        return made[name]
    return reader


# ----- the tests -----------------------------------------------------------------------------
def test_every_code_block_is_run_or_marked_not_run():
    found, to_run, not_run, quoted = count_blocks()
    print("docs: %d code blocks found: %d run, %d marked not run; %d quoted"
          % (found, to_run, not_run, quoted))
    assert found == to_run + not_run
    assert to_run > not_run, "blocks marked not run should be rare"
    for block in CODE_BLOCKS:
        assert block.not_run is None or block.output is None, (
            "%s shows output but is not run" % block.name)


def test_the_rules_find_the_blocks_they_describe():
    found = {b.name: b for b in CODE_BLOCKS}
    readme = [b for b in found.values() if b.path.name == "README.md"]
    assert {b.kind for b in readme} == {"python", "shell"}
    assert any(b.output is not None for b in readme)
    commands = list(command_lines("a b  # note\nc && cd 'x y'\n"))
    assert commands == [["a", "b"], ["c"], ["cd", "x y"]]
    assert kind_of("", "order, visited = [], {root}\n") == "text"
    assert kind_of("", "python -m tinyllm.exercises list\n") == "shell"


@pytest.mark.parametrize("block", CODE_BLOCKS, ids=lambda b: b.name)
def test_code_block(block, request, readers, tmp_path):
    if block.not_run is not None:
        pytest.skip("not run: " + block.not_run)
    if block.kind == "python":
        run_python(block, tmp_path)
        return
    reader = readers("README.md" if block.path.name == "README.md" else "chapters", request)
    reader.run_shell(block)
    for note in reader.notes:
        print(note)
