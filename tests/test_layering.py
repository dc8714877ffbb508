"""The layers of tinyllm import one way only: each module imports from its own layer or from
layers below it, and the kernels import one another without cycles."""

import ast
from pathlib import Path

import tinyllm

PACKAGE = Path(tinyllm.__file__).parent

# From the bottom up (STYLE.md, "One way down"). Names not listed belong to the top layer.
LAYERS = [
    ["kernels", "random"],
    ["autograd"],
    ["ops", "gradcheck"],
    ["functional"],
    ["nn", "optim", "distributed"],
    ["models"],
    ["data", "training"],
    ["serving"],
]
LAYER_OF = {name: level for level, names in enumerate(LAYERS) for name in names}
TOP = len(LAYERS)

# The one step up: Tensor's operators (``a @ b``) call into ``tinyllm.ops``, imported inside
# the methods, since the ops are built on Tensor.
ALLOWED_UPWARD = {("tinyllm.autograd.tensor", "tinyllm.ops")}


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path):
    """Every tinyllm module that ``path`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(node.module + "." + alias.name for alias in node.names)
    return {name for name in found if name.startswith("tinyllm.")}


def layer(module):
    """The layer of ``tinyllm.<package>...``, None for the package itself."""
    parts = module.split(".")
    return LAYER_OF.get(parts[1], TOP) if len(parts) > 1 else None


def all_modules():
    return {module_name(p): p for p in PACKAGE.rglob("*.py")
            if "exercises" not in p.relative_to(PACKAGE).parts[:1]}


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for module, path in sorted(all_modules().items()):
        own = layer(module)
        if own is None:
            continue
        for target in imported_modules(path):
            if layer(target) > own and (module, target) not in ALLOWED_UPWARD:
                upward.append("%s (layer %d) imports %s (layer %d)"
                              % (module, own, target, layer(target)))
    assert upward == []


def test_the_kernels_import_one_another_without_cycles():
    modules = {m: p for m, p in all_modules().items() if m.startswith("tinyllm.kernels")}
    edges = {m: {t for t in imported_modules(p) if t in modules and t != m}
             for m, p in modules.items()}
    done, on_path = set(), []

    def visit(module):
        if module in on_path:
            raise AssertionError("import cycle: " + " -> ".join(
                on_path[on_path.index(module):] + [module]))
        if module in done:
            return
        on_path.append(module)
        for target in sorted(edges[module]):
            visit(target)
        on_path.pop()
        done.add(module)

    for module in sorted(modules):
        visit(module)


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages - set(LAYER_OF) <= {"exercises", "serving"}
