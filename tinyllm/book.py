"""The book: the chapters and their executed notebooks as a website (Jupyter Book 1.x).

    tinyllm book                     write book/_build/html (MathJax from its CDN)
    tinyllm book --mathjax DIR       load MathJax 3 from a local copy (the npm package `mathjax`)
    tinyllm book --repo-url URL      link source files to URL/blob/BRANCH/PATH

Jupyter Book wants every page under one folder, so the build stages a copy beside the output
(``book/_build/.book-source`` for ``book/_build/html``)::

    _config.yml        book/_config.yml with the options of this build
    _toc.yml           written from the files found, so a new chapter joins by itself:
                       the home page, then chapter NN with notebook NN beneath it, then the
                       chapters without a notebook (glossary, notation, references) as appendices
    index.md           book/intro.md
    chapters/*.md      the chapters, with their links to source files rewritten
    notebooks/*.ipynb  the notebooks, likewise; shown with their saved outputs, never executed
    code/...           a page for each source file a chapter links to (none with --repo-url)

The staging keeps the repository's layout, so the links between chapters and notebooks
(``../notebooks/06-attention.ipynb``, ``02-losses-and-gradients.md#...``) resolve unchanged.
A link to any other file of the repository (``../tinyllm/nn/attention.py``) goes to that
file's page in the book, or to the repository when a URL is configured. Only files whose text
changed are rewritten, so a second build redoes only the pages that changed.

Jupyter Book is an optional dependency (``pip install -e ".[book]"``); only ``build_book``
uses it, in a Python process of its own.
"""

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NUMBERED = re.compile(r"^(\d+)-.+")
MATHJAX_FILE = "tex-mml-chtml.js"    # the MathJax 3 bundle Sphinx loads from the CDN by default
# The MathJax bundles Sphinx does not load; everything else in es5/ (the components a formula
# may load on demand, the fonts) is copied.
MATHJAX_SKIP = {"tex-chtml-full-speech.js", "tex-chtml-full.js", "tex-svg-full.js",
                "tex-svg.js", "tex-mml-svg.js", "mml-svg.js", "mml-chtml.js", "tex-chtml.js",
                "node-main.js"}
CODE_LANGUAGES = {".py": "python", ".toml": "toml", ".yml": "yaml", ".yaml": "yaml",
                  ".json": "json", ".sh": "bash", ".cfg": "ini", ".txt": "text", "": "text"}
# A Markdown link or image: [text](target "title"); the text may hold one level of brackets.
LINK = re.compile(r"(?P<bang>!?)\[(?P<text>(?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]"
                  r"\((?P<target>[^()\s]+)(?P<title>\s+\"[^\"]*\")?\)")
MERMAID_FENCE = re.compile(r"^([> ]*```+)mermaid[ \t]*$", re.MULTILINE)

SPHINX_SCRIPT = """
import json, sys
from jupyter_book.sphinx import build_sphinx
o = json.loads(sys.argv[1])
result = build_sphinx(o["sourcedir"], o["outputdir"], noconfig=True, path_config=o["path_config"],
                      confoverrides={"external_toc_path": o["toc"], "latex_individualpages": False},
                      doctreedir=o["doctreedir"], builder="html", quiet=o["quiet"])
sys.exit(1 if isinstance(result, BaseException) else int(result or 0))
"""


class BookError(Exception):
    """A book that cannot be built: missing dependency, missing folder, failed Sphinx build."""


# ----- what the book holds ----------------------------------------------------------------
def numbered_files(folder, suffix):
    """{number: path} of the files NN-name.SUFFIX in ``folder``, e.g. {6: .../06-attention.md}."""
    found = {}
    for path in sorted(Path(folder).glob("*" + suffix)):
        match = NUMBERED.match(path.name)
        if match:
            found.setdefault(int(match.group(1)), path)
    return found


def table_of_contents(source_root):
    """The book's _toc.yml (as a dict) for the chapters/ and notebooks/ of ``source_root``.

    Chapter NN with notebook NN beneath it, in the order of NN; the chapters with no notebook
    form the part "Appendices"; a notebook with no chapter is a chapter of its own.
    """
    root = Path(source_root)
    chapters = numbered_files(root / "chapters", ".md")
    notebooks = numbered_files(root / "notebooks", ".ipynb")
    main, appendices = [], []
    for number in sorted(set(chapters) | set(notebooks)):
        notebook = notebooks.get(number)
        notebook_entry = notebook and {"file": "notebooks/" + notebook.stem,
                                       "title": "Notebook %d" % number}
        if number not in chapters:
            main.append(notebook_entry)
        elif notebook is None:
            appendices.append({"file": "chapters/" + chapters[number].stem})
        else:
            main.append({"file": "chapters/" + chapters[number].stem,
                         "sections": [notebook_entry]})
    parts = [{"caption": "Chapters", "chapters": main}] if main else []
    if appendices:
        parts.append({"caption": "Appendices", "chapters": appendices})
    return {"format": "jb-book", "root": "index", "parts": parts}


# ----- staging ----------------------------------------------------------------------------
def write_if_changed(path, text):
    """Write ``text`` to ``path`` unless it already holds it (Sphinx rebuilds by mtime)."""
    path = Path(path)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def is_book_page(relative):
    """Whether the repository path ``relative`` is a chapter or notebook of the book."""
    return (len(relative.parts) == 2 and NUMBERED.match(relative.name) is not None
            and (relative.parts[0], relative.suffix) in {("chapters", ".md"),
                                                        ("notebooks", ".ipynb")})


class Stager:
    """Copies the book's pages into ``staging``, rewriting their links to other files."""

    def __init__(self, source_root, staging, repo_url="", branch="main"):
        self.root = Path(source_root).resolve()
        self.staging = Path(staging)
        self.repo_url = (repo_url or "").rstrip("/")
        self.branch = branch or "main"
        self.pending = []           # repository files (relative) that need a page in code/
        self.staged = set()

    def link_target(self, target, page):
        """The target a link of ``page`` (a repository-relative path) should have in the book,
        or None when the link should become plain text (a folder, without a repository URL)."""
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return target                                   # a URL, an anchor, a site path
        path, _, fragment = target.partition("#")
        fragment = "#" + fragment if fragment else ""
        resolved = (self.root / page).parent.joinpath(path).resolve()
        try:
            relative = resolved.relative_to(self.root)
        except ValueError:
            return target                                   # outside the repository
        if not resolved.exists() or is_book_page(relative):
            return target      # a page of the book keeps its relative link; Sphinx checks it
        if self.repo_url:
            kind = "tree" if resolved.is_dir() else "blob"
            return "%s/%s/%s/%s%s" % (self.repo_url, kind, self.branch, relative.as_posix(),
                                      fragment)
        if resolved.is_dir():
            return None
        self.pending.append(relative)
        here = (self.staging / page).parent
        page_path = self.staging / "code" / self.code_page_name(relative)
        keep = fragment if relative.suffix == ".md" else ""
        return os.path.relpath(page_path, here).replace(os.sep, "/") + keep

    @staticmethod
    def code_page_name(relative):
        """code/ENTRY for a repository file: Markdown is a page, text a page showing the code,
        anything else (an image) is copied as it is."""
        if relative.suffix == ".md" or relative.suffix not in CODE_LANGUAGES:
            return relative.as_posix()
        return relative.as_posix() + ".md"

    def rewrite_links(self, markdown, page):
        """``markdown`` (the text of ``page``) with its links pointing into the book."""
        def replace(match):
            target = self.link_target(match.group("target"), page)
            if target is None:
                return match.group("text")
            return "%s[%s](%s%s)" % (match.group("bang"), match.group("text"), target,
                                     match.group("title") or "")
        return LINK.sub(replace, markdown)

    def stage_chapter(self, relative):
        text = (self.root / relative).read_text(encoding="utf-8")
        # Sphinx draws no Mermaid diagrams (GitHub does): the book shows their text.
        text = MERMAID_FENCE.sub(r"\1text", text)
        write_if_changed(self.staging / relative, self.rewrite_links(text, relative))

    def stage_notebook(self, relative):
        notebook = json.loads((self.root / relative).read_text(encoding="utf-8"))
        for cell in notebook["cells"]:
            if cell["cell_type"] == "markdown":
                source = cell["source"]
                source = "".join(source) if isinstance(source, list) else source
                cell["source"] = self.rewrite_links(source, relative)
        write_if_changed(self.staging / relative,
                         json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")

    def stage_code_pages(self):
        """A page in code/ for every repository file the staged pages link to."""
        while self.pending:
            relative = self.pending.pop()
            if relative in self.staged:
                continue
            self.staged.add(relative)
            destination = self.staging / "code" / self.code_page_name(relative)
            source = self.root / relative
            if relative.suffix == ".md":
                text = self.rewrite_links(source.read_text(encoding="utf-8"), relative)
                # Pages outside the table of contents are "orphans"; Sphinx then stays silent.
                write_if_changed(destination, "---\norphan: true\n---\n" + text)
            elif relative.suffix in CODE_LANGUAGES:
                code = source.read_text(encoding="utf-8")
                longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
                fence = "`" * max(3, longest + 1)
                write_if_changed(destination, "---\norphan: true\n---\n# `%s`\n\n%s%s\n%s\n%s\n"
                                 % (relative.as_posix(), fence, CODE_LANGUAGES[relative.suffix],
                                    code.rstrip("\n"), fence))
            elif not destination.exists() or destination.read_bytes() != source.read_bytes():
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, destination)

    def stage(self, book_folder, config):
        """Stage the whole book; ``config`` is the dict written as _config.yml."""
        import yaml
        self.staging.mkdir(parents=True, exist_ok=True)
        toc = table_of_contents(self.root)
        pages = set()
        for path in numbered_files(self.root / "chapters", ".md").values():
            pages.add(Path("chapters", path.name))
            self.stage_chapter(Path("chapters", path.name))
        for path in numbered_files(self.root / "notebooks", ".ipynb").values():
            pages.add(Path("notebooks", path.name))
            self.stage_notebook(Path("notebooks", path.name))
        # The home page sits at the root of the book: its links are relative to that root.
        write_if_changed(self.staging / "index.md",
                         (Path(book_folder) / "intro.md").read_text(encoding="utf-8"))
        self.stage_code_pages()
        write_if_changed(self.staging / "_toc.yml", yaml.safe_dump(toc, sort_keys=False))
        write_if_changed(self.staging / "_config.yml", yaml.safe_dump(config, sort_keys=False))
        self.remove_stale(pages)

    def remove_stale(self, pages):
        """Delete staged chapters, notebooks and code pages whose source is gone."""
        wanted = {self.staging / page for page in pages}
        wanted |= {self.staging / "code" / self.code_page_name(rel) for rel in self.staged}
        for folder in ("chapters", "notebooks", "code"):
            for path in (self.staging / folder).rglob("*"):
                if path.is_file() and path not in wanted:
                    path.unlink()


# ----- MathJax ----------------------------------------------------------------------------
def find_mathjax(folder):
    """The es5/ folder of a MathJax 3 copy at ``folder``: the npm package's folder, its es5/,
    or a folder holding node_modules/mathjax (``npm install --prefix FOLDER mathjax@3``)."""
    folder = Path(folder)
    for candidate in (folder, folder / "es5", folder / "mathjax" / "es5",
                      folder / "node_modules" / "mathjax" / "es5"):
        if (candidate / MATHJAX_FILE).is_file():
            return candidate
    raise BookError("no MathJax 3 in %s (looked for %s in it, in es5/ and in "
                    "node_modules/mathjax/es5/); install it with "
                    "`npm install --prefix %s mathjax@3`" % (folder, MATHJAX_FILE, folder))


def copy_mathjax(es5, static):
    """Copy MathJax's es5/ (less the bundles Sphinx does not load) to ``static``/mathjax."""
    shutil.copytree(es5, Path(static) / "mathjax", dirs_exist_ok=True,
                    ignore=lambda folder, names: [n for n in names if n in MATHJAX_SKIP])


# ----- the build --------------------------------------------------------------------------
def book_config(book_folder, repo_url=None, mathjax=False):
    """book/_config.yml as a dict, with the options of this build applied."""
    import yaml
    config = yaml.safe_load((Path(book_folder) / "_config.yml").read_text(encoding="utf-8"))
    repository = config.setdefault("repository", {})
    if repo_url is not None:
        repository["url"] = repo_url
    if repository.get("url"):
        config.setdefault("html", {})["use_repository_button"] = True
    sphinx_config = config.setdefault("sphinx", {}).setdefault("config", {}) or {}
    config["sphinx"]["config"] = sphinx_config
    if mathjax:
        sphinx_config["mathjax_path"] = "mathjax/" + MATHJAX_FILE   # relative to _static/
    return config


def build_book(out_dir=None, source_root=None, *, mathjax=None, repo_url=None, quiet=True):
    """Build the book as HTML into ``out_dir`` (default: book/_build/html) and return it.

    ``source_root`` is the repository holding chapters/, notebooks/ and book/ (default: this
    checkout). ``mathjax`` is a folder with MathJax 3 (see ``find_mathjax``) that is copied
    into the site and loaded from there, instead of from the CDN. ``repo_url`` (default:
    repository.url of book/_config.yml) sends links to source files to the repository.
    The notebooks are not executed: the pages show the outputs saved in them.
    """
    root = Path(source_root or ROOT).resolve()
    book_folder = root / "book"
    for needed in (book_folder / "_config.yml", book_folder / "intro.md", root / "chapters"):
        if not needed.exists():
            raise BookError("%s is missing; tinyllm book builds from a source checkout of "
                            "tinyllm" % needed)
    out_dir = Path(out_dir) if out_dir else book_folder / "_build" / "html"
    out_dir = out_dir.resolve()
    if importlib.util.find_spec("jupyter_book") is None:
        raise BookError("the book needs Jupyter Book 1.x; install it with "
                        "pip install -e \".[book]\"")
    es5 = find_mathjax(mathjax) if mathjax else None

    staging = out_dir.parent / ".book-source"
    config = book_config(book_folder, repo_url, mathjax=es5 is not None)
    stager = Stager(root, staging, config["repository"].get("url", ""),
                    config["repository"].get("branch", "main"))
    stager.stage(book_folder, config)

    # Sphinx runs in a fresh interpreter: it patches docutils' globals, and the extension
    # sphinx-external-toc walks every object of the process (gc.get_objects()), which raises
    # ReferenceError on a dead weak proxy that importing tinyllm leaves in this one.
    options = {"sourcedir": str(staging), "outputdir": str(out_dir),
               "path_config": str(staging / "_config.yml"),
               "toc": (staging / "_toc.yml").as_posix(),
               "doctreedir": str(out_dir.parent / ".doctrees"), "quiet": quiet}
    status = subprocess.run([sys.executable, "-c", SPHINX_SCRIPT, json.dumps(options)]).returncode
    if status != 0:
        raise BookError("Sphinx failed (exit status %d); its messages are above" % status)
    if es5 is not None:
        copy_mathjax(es5, out_dir / "_static")
    return out_dir


# ----- tinyllm book -----------------------------------------------------------------------
def add_arguments(parser):
    """The options of ``tinyllm book``."""
    parser.add_argument("--out", default=None,
                        help="output folder (default: book/_build/html)")
    parser.add_argument("--mathjax", metavar="DIR", default=None,
                        help="load MathJax 3 from this local copy (npm install --prefix DIR "
                             "mathjax@3) instead of its CDN, to read the book offline")
    parser.add_argument("--repo-url", default=None,
                        help="link source files to URL/blob/BRANCH/PATH (default: "
                             "repository.url of book/_config.yml; empty: pages in the book)")
    parser.add_argument("--verbose", action="store_true", help="print Sphinx's progress")
    return parser


def run(args):
    """Build the book for parsed ``args``; print where it is. Returns the exit status."""
    start = time.perf_counter()
    try:
        html = build_book(args.out, mathjax=args.mathjax, repo_url=args.repo_url,
                          quiet=not args.verbose)
    except BookError as error:
        print("tinyllm book: error: %s" % error, file=sys.stderr)
        return 2
    print("wrote %s in %.0f s; open %s in a browser"
          % (html, time.perf_counter() - start, (html / "index.html").as_uri()))
    return 0


def main(argv=None):
    """``tinyllm book`` (also ``python -m tinyllm.book``); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="tinyllm book", description="Build the book (chapters and executed notebooks) "
        "as a website with Jupyter Book: book/_build/html/index.html.")
    return run(add_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
