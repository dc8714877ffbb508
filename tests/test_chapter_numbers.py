"""The numbers a chapter quotes come from the notebook beside it.

Every decimal number of the chapter's prose with at least two decimals (0.105, 1.5e-8, 17.3
is not one: one decimal is too common to mean anything) must appear in its notebook: in a
cell's source (an assert, a hand-written constant) or in a saved output, written the same way
or as a longer number that rounds to it (0.10536 -> 0.105). When a notebook is re-executed and
a number moves, this test names the chapter number that no longer matches.

A few numbers are worked out in the text itself (0.965^100 = 0.028) or are not measurements
(an arXiv id); they are listed below with the reason.
"""

import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAPTERS = [p for p in sorted((ROOT / "chapters").glob("[0-9][0-9]-*.md"))
            if (ROOT / "notebooks" / (p.stem + ".ipynb")).is_file()]

QUOTED = re.compile(r"(?<![\w.])(\d+\.\d{2,}(?:e-?\d+)?)(?![\w.])")
ANY_NUMBER = re.compile(r"(\d+\.\d+(?:[eE][-+]?\d+)?|\d+)")

# Numbers worked out in the chapter's own text, or not measurements at all.
IN_THE_TEXT = {
    "02-losses-and-gradients": {"4.17": "log 65, worked in the text"},
    "03-optimizers": {"0.028": "0.965^100, worked in the text",
                      "0.65": "1 - 0.9^10, worked in the text",
                      "0.741": "(1 - lr wd)^300, worked in the text",
                      "0.752": "the same decay with the other setting, worked in the text"},
    "04-multilayer-networks": {"2.89": "the mantissa of 2.89e-6, written x 10^-6"},
    "06-attention": {"2.028": "e^0.7071, worked in the text",
                     "5.056": "2.028 + 1 + 2.028, worked in the text"},
    "08-transformer": {"1706.03762": "an arXiv id"},
    "09-language-models-and-decoding": {"0.687": "a top-5 mass, in the title of a plot"},
    "10-pretraining-and-finetuning": {"0.0923": "0.1 * 12/13, worked in the text",
                                      "0.1077": "0.1 + 0.1/13, worked in the text",
                                      "0.670": "a loss quoted from the comparison table",
                                      "2005.14165": "an arXiv id"},
    "12-evaluation-and-deployment": {"6.585": "log2 of 96, worked in the table"},
}
FROM_RESULTS_MD = set()     # chapters that quote benchmarks/RESULTS.md instead of their notebook


def prose(path):
    """The chapter without its code blocks."""
    return re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)


def notebook_text(path):
    """Every cell's source and every saved text output of a notebook, as one string."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    parts = []
    for cell in notebook["cells"]:
        parts.append("".join(cell["source"]))
        for output in cell.get("outputs", []):
            parts.append("".join(output.get("text", "")))
            parts.append("".join(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def matches(quoted, text, values):
    """Whether ``quoted`` (as the chapter writes it) is in the notebook, exactly or rounded."""
    if quoted in text:
        return True
    mantissa, _, exponent = quoted.partition("e")
    decimals = len(mantissa.split(".")[1])
    target = float(quoted)
    if exponent:
        half_unit = 0.5 * 10.0 ** (int(exponent) - decimals)
        return any(abs(v - target) <= half_unit * (1 + 1e-9) for v in values)
    return any(round(v, decimals) == target or round(100 * v, decimals) == target
               for v in values)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem[:2])
def test_the_chapters_numbers_are_in_its_notebook(chapter):
    if chapter.stem in FROM_RESULTS_MD:
        pytest.skip("chapter 11 quotes benchmarks/RESULTS.md until its notebook measures "
                    "attention through the API")
    text = notebook_text(ROOT / "notebooks" / (chapter.stem + ".ipynb"))
    values = [float(v) for v in ANY_NUMBER.findall(text)]
    allowed = IN_THE_TEXT.get(chapter.stem, {})
    missing = sorted(n for n in set(QUOTED.findall(prose(chapter)))
                     if n not in allowed and not matches(n, text, values))
    assert not missing, ("%s quotes numbers its notebook does not print or assert: %s"
                         % (chapter.name, ", ".join(missing)))


def test_the_listed_exceptions_are_still_quoted():
    for stem, numbers in IN_THE_TEXT.items():
        text = prose(ROOT / "chapters" / (stem + ".md"))
        for number in numbers:
            assert number in text, (stem, number)
