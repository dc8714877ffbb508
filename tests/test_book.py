"""The rendered book: built once with Jupyter Book, three pages opened in headless Chromium.

How the pages are checked, with nothing beyond Chromium and the standard library: each page is
copied beside itself with a small script added that waits for MathJax to finish
(``MathJax.startup.promise``) and then writes the ``naturalWidth`` of every image into the page
as JSON. ``chromium --headless --dump-dom`` prints the DOM after the scripts ran, and the test
reads it with ``html.parser``:

- every formula was typeset: each element that Sphinx marks as math (class ``math``) holds
  MathJax's output ``mjx-container``, and no raw ``$...$``, ``\\(...\\)`` or ``\\[...\\]``
  is left in the text outside code;
- every image loaded: ``naturalWidth > 0`` for each ``img``;
- the navigation links resolve: each link of the left navigation names a file of the build.

MathJax loads from a local copy (the npm package ``mathjax``, copied into the site by
``build_book(mathjax=...)``), and Chromium resolves no host name at all, so a page that
tried to fetch anything from the network would show untypeset formulas or broken images.
The copy is looked for in $TINYLLM_MATHJAX, then in book/_build/mathjax (where
``npm install --prefix book/_build/mathjax mathjax@3`` puts it), and installed with npm
into a temporary folder when neither has it. Without Jupyter Book, Chromium or MathJax the
tests skip, saying what to install, unless TINYLLM_BOOK_REQUIRED=1 makes them fail.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tinyllm import book

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["chapters/02-losses-and-gradients.html",    # formulas, display and inline
         "chapters/06-attention.html",               # matrices, sums, the softmax Jacobian
         "notebooks/06-attention.html"]              # an executed notebook: math and plots
CHROMIUM_NAMES = ["chromium", "chromium-browser", "google-chrome"]
REPORT_SCRIPT = """
<script>
window.addEventListener("load", function () {
  function report() {
    var out = document.createElement("pre");
    out.id = "tinyllm-book-check";
    out.textContent = JSON.stringify(Array.from(document.images).map(function (img) {
      return {src: img.getAttribute("src"), naturalWidth: img.naturalWidth};
    }));
    document.body.appendChild(out);
  }
  var startup = window.MathJax && window.MathJax.startup;
  if (startup && startup.promise) { startup.promise.then(report, report); } else { report(); }
});
</script>
"""
RAW_TEX = re.compile(r"\$[^$\s][^$]*\$|\\\(|\\\)|\\\[|\\\]")
NOT_PROSE = {"head", "script", "style", "pre", "code", "mjx-container", "textarea", "kbd"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


def find_chromium():
    for name in [os.environ.get("CHROMIUM", "")] + CHROMIUM_NAMES:
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def find_mathjax(tmp_path_factory):
    """A folder with MathJax 3, or None; see the module's docstring for where it looks."""
    for folder in (os.environ.get("TINYLLM_MATHJAX"), ROOT / "book" / "_build" / "mathjax"):
        if folder:
            try:
                return book.find_mathjax(folder)
            except book.BookError:
                pass
    npm = shutil.which("npm")
    if npm is None:
        return None
    folder = tmp_path_factory.mktemp("mathjax")
    result = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder),
                             "mathjax@3"], capture_output=True, text=True, timeout=300)
    return book.find_mathjax(folder) if result.returncode == 0 else None


def missing(reason):
    """Skip for want of ``reason``; fail instead where TINYLLM_BOOK_REQUIRED=1 (CI sets it,
    so that the book is never left untested there by a skip)."""
    if os.environ.get("TINYLLM_BOOK_REQUIRED") == "1":
        pytest.fail(reason + " (TINYLLM_BOOK_REQUIRED=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The book built once for this module, MathJax loaded from a local copy."""
    if importlib.util.find_spec("jupyter_book") is None:
        missing('Jupyter Book is not installed: pip install -e ".[book]"')
    if find_chromium() is None:
        missing("no Chromium to open the pages: apt-get install -y chromium")
    mathjax = find_mathjax(tmp_path_factory)
    if mathjax is None:
        missing("no local MathJax 3 and no npm to install it: "
                "npm install --prefix book/_build/mathjax mathjax@3")
    return book.build_book(tmp_path_factory.mktemp("book") / "html", mathjax=mathjax)


class Page(HTMLParser):
    """What the checks need from a rendered DOM: the math elements and whether each holds
    MathJax's output, the prose text, the navigation links, the images' report."""

    def __init__(self, dom):
        super().__init__(convert_charrefs=True)
        self.stack = []            # (tag, classes, id) of the open elements
        self.math = []             # per element of class "math": [opening tag, typeset?]
        self.open_math = []
        self.prose = []
        self.nav_links = []
        self.report = ""
        self.feed(dom)
        self.close()

    def inside(self, test):
        return any(test(tag, classes, id_) for tag, classes, id_ in self.stack)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        if tag == "a" and attrs.get("href") and self.inside(
                lambda t, c, i: t == "nav" and "bd-docs-nav" in c):
            self.nav_links.append(attrs["href"])
        if tag == "mjx-container" and self.open_math:
            self.open_math[-1][1] = True
        if tag in VOID:
            return
        self.stack.append((tag, classes, attrs.get("id")))
        if "math" in classes:
            entry = [self.get_starttag_text(), False]
            self.math.append(entry)
            self.open_math.append(entry)

    def handle_endtag(self, tag):
        while self.stack:
            open_tag, classes, _ = self.stack.pop()
            if "math" in classes:
                self.open_math.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        if self.stack and self.stack[-1][2] == "tinyllm-book-check":
            self.report += data
        elif not self.inside(lambda t, c, i: t in NOT_PROSE):
            self.prose.append(data)


def render(html_dir, page):
    """The DOM of ``page`` after its scripts ran in headless Chromium, parsed."""
    source = html_dir / page
    probe = source.with_name(source.stem + ".check.html")
    probe.write_text(source.read_text(encoding="utf-8").replace("</body>",
                                                                REPORT_SCRIPT + "</body>"),
                     encoding="utf-8")
    command = [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=20000",
               "--dump-dom", probe.as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return Page(result.stdout)


@pytest.fixture(scope="module")
def rendered(site):
    return {page: render(site, page) for page in PAGES}


@pytest.mark.parametrize("page", PAGES)
def test_every_formula_is_typeset(rendered, page):
    dom = rendered[page]
    assert dom.math, "%s: no formulas found (class math)" % page
    untypeset = [tag for tag, typeset in dom.math if not typeset]
    assert not untypeset, "%s: %d of %d formulas hold no mjx-container, first %s" % (
        page, len(untypeset), len(dom.math), untypeset[0])
    text = " ".join(" ".join(dom.prose).split())
    raw = [text[max(0, m.start() - 40):m.end() + 40] for m in RAW_TEX.finditer(text)]
    assert not raw, "%s: raw TeX left in the text: %s" % (page, raw[:5])


@pytest.mark.parametrize("page", PAGES)
def test_every_image_loaded(rendered, page):
    images = json.loads(rendered[page].report)
    broken = [image["src"] for image in images if image["naturalWidth"] <= 0]
    assert not broken, "%s: images that did not load: %s" % (page, broken)
    if page.startswith("notebooks/"):
        plots = [image for image in images if "_images/" in (image["src"] or "")]
        assert plots, "%s: the notebook's saved plots are missing" % page


@pytest.mark.parametrize("page", PAGES)
def test_navigation_links_resolve(rendered, site, page):
    links = rendered[page].nav_links
    assert links, "%s: no left navigation found" % page
    here = (site / page).parent
    missing = []
    for href in links:
        assert "://" not in href, "%s: the navigation links outside the book: %s" % (page, href)
        path = href.split("#")[0].split("?")[0]
        if path and not (here / path).resolve().is_file():
            missing.append(href)
    assert not missing, "%s: navigation links to missing files: %s" % (page, missing)


def test_navigation_lists_every_chapter_and_notebook(rendered, site):
    page = site / PAGES[0]
    links = {page.parent.joinpath(href.split("#")[0]).resolve() if href.split("#")[0] else page
             for href in rendered[PAGES[0]].nav_links}
    expected = {(site / "chapters" / (p.stem + ".html")).resolve()
                for p in book.numbered_files(ROOT / "chapters", ".md").values()}
    expected |= {(site / "notebooks" / (p.stem + ".html")).resolve()
                 for p in book.numbered_files(ROOT / "notebooks", ".ipynb").values()}
    assert expected - links == set()


def test_mathjax_is_the_local_copy(site):
    page = (site / PAGES[1]).read_text(encoding="utf-8")
    assert 'src="../_static/mathjax/%s"' % book.MATHJAX_FILE in page
    assert (site / "_static" / "mathjax" / book.MATHJAX_FILE).is_file()
