"""The course's steps, and how a student's package is loaded and checked.

A student builds ``mytl``, a small deep-learning framework, one module per step, in the order
the chapters teach (``python -m tinyllm.exercises init DIR`` writes the stubs). Later steps
import the student's earlier modules (``from mytl.autograd import Tensor``), so the student's
GPT of step ``gpt`` runs on the student's own engine of step ``autograd``.

Each step is a module of ``tinyllm/exercises/steps/`` holding one ``Step``: its chapter, the
module the student writes, the steps it builds on, the hints, and its checks (functions of a
``grading.CheckContext``, registered with ``@STEP.check(name)``). The expected values the
checks compare with are in ``expected/STEP.npz``; the reference solutions that recorded them
are in the repository's ``instructor/solutions/`` folder, not in the installed package.
"""

import importlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyllm.exercises import grading

HERE = Path(__file__).resolve().parent
STUBS = HERE / "stubs"                  # stubs/mytl/<module>.py
EXPECTED = HERE / "expected"            # expected/<step>.npz
PACKAGE = "mytl"                        # the name of the package the student writes
STATE_FILE = ".tinyllm-course.json"     # beside mytl/: hints seen, steps on the reference

# The steps in the order they are taught: the modules of tinyllm/exercises/steps/.
STEP_ORDER = ("autograd", "elementwise", "tensor_ops", "losses", "optim", "mlp", "embedding",
              "attention", "lstm", "gpt", "bpe", "bpe_gpt2", "decoding", "pretraining", "kernels",
              "evaluation", "training", "errata",
              "modern_decoder",
              "posttraining", "distributed")


class UsageError(Exception):
    """A mistake in how the checker was called (exit status 2), not in the student's code."""


@dataclass
class Check:
    name: str
    function: object
    time_limit: float = grading.DEFAULT_TIME_LIMIT
    doc: str = ""


@dataclass
class Step:
    """One step of the course: a module of ``mytl`` and the checks that grade it."""
    name: str
    chapter: int            # the chapter it follows (chapters/NN-*.md)
    module: str             # the student's file: mytl/<module>.py
    title: str
    teaches: str            # one sentence for the instructor guide and ``list``
    needs: tuple = ()       # the steps whose modules this one imports
    hints: tuple = ()       # graded hints, the last may give the formula
    minutes: int = 60       # expected student time
    checks: list = field(default_factory=list)

    def check(self, name, time_limit=grading.DEFAULT_TIME_LIMIT):
        """Decorator: register ``function(c)`` as the check ``name`` of this step."""
        def register(function):
            if any(existing.name == name for existing in self.checks):
                raise ValueError("step %s has two checks named %r" % (self.name, name))
            self.checks.append(Check(name, function, time_limit,
                                     (function.__doc__ or "").strip()))
            return function
        return register

    @property
    def stub_path(self):
        return STUBS / PACKAGE / (self.module + ".py")

    @property
    def expected_path(self):
        return EXPECTED / (self.name + ".npz")

    def expected_values(self):
        """The recorded expected values of this step's checks (an empty dict if none)."""
        if not self.expected_path.is_file():
            return {}
        with np.load(self.expected_path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}


def all_steps():
    """{name: Step} in the order of STEP_ORDER."""
    steps = {}
    for name in STEP_ORDER:
        try:
            module = importlib.import_module("tinyllm.exercises.steps." + name)
        except ModuleNotFoundError as error:
            if error.name != "tinyllm.exercises.steps." + name:
                raise
            continue
        steps[name] = module.STEP
    return steps


def find_step(name):
    steps = all_steps()
    if name not in steps:
        raise UsageError("unknown step %r; the steps are: %s" % (name, ", ".join(steps)))
    return steps[name]


def prerequisites(step, steps=None):
    """Every step that ``step`` builds on, directly or through another, in course order."""
    steps = all_steps() if steps is None else steps
    seen, todo = set(), list(step.needs)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(steps[name].needs)
    return [name for name in STEP_ORDER if name in seen]


# ----- the student's folder --------------------------------------------------------------------
def package_dir(path):
    """The folder holding ``mytl/`` (given that folder, or ``mytl/`` itself)."""
    path = Path(path).expanduser().resolve()
    if path.name == PACKAGE and (path / "__init__.py").is_file():
        path = path.parent
    if not (path / PACKAGE / "__init__.py").is_file():
        raise UsageError("%s holds no %s/ package; make one with: python -m tinyllm.exercises "
                         "init %s" % (path, PACKAGE, path))
    return path


def read_state(root):
    path = Path(root) / STATE_FILE
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    return {}


def write_state(root, state):
    (Path(root) / STATE_FILE).write_text(json.dumps(state, indent=1, sort_keys=True) + "\n",
                                         encoding="utf-8")


def default_reference_dir():
    """The reference solutions: $TINYLLM_COURSE_REFERENCE, else the repository's
    ``instructor/solutions`` beside an editable install, else None."""
    if os.environ.get("TINYLLM_COURSE_REFERENCE"):
        return Path(os.environ["TINYLLM_COURSE_REFERENCE"])
    candidate = HERE.parents[1] / "instructor" / "solutions"
    return candidate if (candidate / PACKAGE).is_dir() else None


def _purge():
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def _load_file(qualified, path):
    spec = importlib.util.spec_from_file_location(qualified, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[qualified]
        raise
    return module


def load_package(root, modules_from=None):
    """Import the student's ``mytl`` from ``root`` afresh (any earlier one is forgotten).

    ``modules_from`` maps a module name to another folder holding a ``mytl/`` whose file is
    used instead (the reference solution of a step, a stub): those modules are loaded first,
    so that the student's files that import them get them. Returns the package.
    """
    importlib.invalidate_caches()
    _purge()
    root = str(Path(root).resolve())
    sys.path.insert(0, root)
    try:
        package = importlib.import_module(PACKAGE)
        for module, folder in (modules_from or {}).items():
            loaded = _load_file("%s.%s" % (PACKAGE, module),
                                Path(folder) / PACKAGE / (module + ".py"))
            setattr(package, module, loaded)
    finally:
        sys.path.remove(root)
    # Later imports of mytl.* (inside the student's files) need the folder on the path.
    sys.path.insert(0, root)
    return package


def import_module(package, root, module):
    """``mytl.<module>``, importing it from ``root`` unless it was loaded already."""
    name = "%s.%s" % (PACKAGE, module)
    if name in sys.modules:
        return sys.modules[name]
    return importlib.import_module(name)


@dataclass
class StepReport:
    step: Step
    outcomes: list
    on_reference: list          # the steps that ran on the reference solution
    skipped: bool = False       # the step itself was switched to the reference

    @property
    def passed(self):
        return sum(o.passed for o in self.outcomes)


def run_step(step, root, use_reference=(), reference_dir=None, recording=False,
             modules_from=None):
    """Run every check of ``step`` on the package in ``root``; returns a StepReport.

    ``use_reference``: step names whose modules come from ``reference_dir`` instead of the
    student's files. ``modules_from``: {module: folder} to load from elsewhere (used by the
    instructor's proof to put a planted bug or a stub in place).
    """
    steps = all_steps()
    chosen = dict(modules_from or {})
    on_reference = []
    for name in use_reference:
        if name not in steps:
            raise UsageError("unknown step %r in --use-reference; the steps are: %s"
                             % (name, ", ".join(steps)))
        if reference_dir is None:
            raise UsageError(
                "--use-reference needs the reference solutions, which are not installed with "
                "tinyllm: ask your instructor for the folder and pass --reference-dir DIR "
                "(or set TINYLLM_COURSE_REFERENCE)")
        chosen.setdefault(steps[name].module, reference_dir)
        on_reference.append(name)
    # Load the substituted modules in course order, so that each finds the ones it imports.
    order = [s.module for s in steps.values()]
    substitutes = {m: chosen[m] for m in sorted(chosen, key=order.index)}
    if step.name in use_reference:
        return StepReport(step, [], on_reference, skipped=True)
    expected = {} if recording else step.expected_values()
    outcomes = []
    saved_path = list(sys.path)
    try:
        try:
            with grading.captured_output(), grading.time_limit(60):
                package = load_package(root, substitutes)
                module = import_module(package, root, step.module)
        except UsageError:
            raise
        except (Exception, SystemExit, grading.CheckTimeout) as error:
            text = ("importing it took more than 60 s" if isinstance(error, grading.CheckTimeout)
                    else grading.describe_error(error, Path(root) / PACKAGE))
            outcomes = [grading.Outcome(check.name, False, "mytl/%s.py could not be imported: "
                                        "%s" % (step.module, text)) for check in step.checks]
            return StepReport(step, outcomes, on_reference)
        recorded = {}
        for check in step.checks:
            outcome, context = grading.run_check(step, check, package, module, expected,
                                                 Path(root) / PACKAGE, recording)
            outcomes.append(outcome)
            recorded.update(context.recorded)
        report = StepReport(step, outcomes, on_reference)
        report.recorded = recorded
        return report
    finally:
        sys.path[:] = saved_path
        _purge()


def format_report(report, out):
    """Print one line per check and the step's score."""
    step = report.step
    print("Step %s (chapter %d): %s   [mytl/%s.py]" % (step.name, step.chapter, step.title,
                                                       step.module), file=out)
    if report.skipped:
        print("  this step uses the reference solution (--use-reference): not graded", file=out)
        return
    if report.on_reference:
        print("  runs on the reference solution of: %s" % ", ".join(report.on_reference),
              file=out)
    width = max((len(o.name) for o in report.outcomes), default=0)
    for outcome in report.outcomes:
        print("%s %-*s  %s" % ("PASS" if outcome.passed else "FAIL", width, outcome.name,
                               outcome.detail), file=out)
    print("score: %d/%d checks" % (report.passed, len(report.outcomes)), file=out)
