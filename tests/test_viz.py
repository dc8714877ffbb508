"""tinyllm.viz.draw_graph: DOT text and a matplotlib picture of the graph behind a tensor."""

import re

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from matplotlib.figure import Figure                                   # noqa: E402
from matplotlib.patches import Ellipse, FancyArrowPatch, FancyBboxPatch  # noqa: E402

import tinyllm as tl                                                   # noqa: E402
from tinyllm import viz                                                # noqa: E402


def dot_nodes(dot):
    """{node id: (shape, label)} parsed from DOT text."""
    return {m[0]: (m[1], m[2]) for m in
            re.findall(r'^\s*(\w+) \[shape=(\w+), label="((?:[^"\\]|\\.)*)"', dot, re.M)}


def dot_edges(dot):
    return re.findall(r"^\s*(\w+) -> (\w+)", dot, re.M)


@pytest.fixture
def mlp():
    """y = sum(tanh(x @ W + b) * tanh(x @ W + b)): 6 ops, 3 leaves, one value used twice."""
    x = tl.tensor(np.ones((2, 3)), requires_grad=True)
    W = tl.tensor(np.ones((3, 4)), requires_grad=True)
    b = tl.tensor(np.zeros(4), requires_grad=True)
    h = (x @ W + b).tanh()
    y = (h * h).sum()
    return y, {x: "x", W: "W", b: "b"}


def test_dot_has_one_box_per_op_with_its_output_shape(mlp):
    y, _ = mlp
    dot = viz.draw_graph(y, format="dot")
    assert dot.startswith("digraph {") and dot.rstrip().endswith("}")
    boxes = sorted(label for shape, label in dot_nodes(dot).values() if shape == "box")
    assert boxes == sorted(["MatMul\\n(2, 4)", "Add\\n(2, 4)", "Tanh\\n(2, 4)",
                            "Mul\\n(2, 4)", "Sum\\n()"])


def test_dot_has_one_ellipse_per_leaf_with_shape_and_name(mlp):
    y, names = mlp
    dot = viz.draw_graph(y, format="dot", names=names)
    ellipses = sorted(label for shape, label in dot_nodes(dot).values() if shape == "ellipse")
    assert ellipses == ["W\\n(3, 4)", "b\\n(4,)", "x\\n(2, 3)"]


def test_dot_has_one_edge_per_recorded_input(mlp):
    y, _ = mlp
    dot = viz.draw_graph(y, format="dot")
    # MatMul 2 + Add 2 + Tanh 1 + Mul 2 (h used twice) + Sum 1
    assert len(dot_edges(dot)) == 8
    nodes = dot_nodes(dot)
    for source, target in dot_edges(dot):
        assert nodes[target][0] == "box"        # every arrow goes into an op


def test_dot_draws_a_shared_subexpression_once():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    shared = x.exp()
    y = (shared.sin() + shared.cos() * shared).sum()
    dot = viz.draw_graph(y, format="dot")
    labels = [label for _, label in dot_nodes(dot).values()]
    assert sum(label.startswith("Exp") for label in labels) == 1
    assert sum(label.startswith("(2,)") for label in labels) == 1      # the one leaf
    exp_id = next(k for k, (_, label) in dot_nodes(dot).items() if label.startswith("Exp"))
    assert sum(source == exp_id for source, _ in dot_edges(dot)) == 3   # three uses


def test_dot_leaves_out_inputs_that_need_no_gradient():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    constant = tl.tensor([3.0, 4.0])
    dot = viz.draw_graph((x * constant).sum(), format="dot")
    assert [shape for shape, _ in dot_nodes(dot).values()].count("ellipse") == 1
    assert len(dot_edges(dot)) == 2


def test_dot_numbers_the_outputs_of_a_multi_output_op():
    x = tl.tensor(np.arange(6.0), requires_grad=True)
    a, b, c = x.split(2)
    dot = viz.draw_graph((a * c).sum(), format="dot")
    assert "Split\\n[0] (2,)\\n[1] (2,)\\n[2] (2,)" in dot
    assert re.search(r'-> \w+ \[label="0"\]', dot) and re.search(r'-> \w+ \[label="2"\]', dot)


def test_dot_without_shapes_and_with_a_named_intermediate():
    x = tl.tensor([1.0], requires_grad=True)
    hidden = x.exp()
    dot = viz.draw_graph((hidden * 2).sum(), format="dot", show_shapes=False,
                         names={x: "x", hidden: "hidden"})
    labels = sorted(label for _, label in dot_nodes(dot).values())
    assert labels == ["Exp\\nhidden", "Mul", "Sum", "x"]


def test_dot_of_a_leaf_alone_is_one_ellipse():
    dot = viz.draw_graph(tl.tensor([[1.0, 2.0]]), format="dot")
    assert list(dot_nodes(dot).values()) == [("ellipse", "(1, 2)")]
    assert dot_edges(dot) == []


def test_matplotlib_returns_a_figure_with_one_box_per_op_and_ellipse_per_leaf(mlp):
    y, names = mlp
    fig = viz.draw_graph(y, names=names)
    assert isinstance(fig, Figure)
    patches = fig.axes[0].patches
    assert sum(isinstance(p, FancyBboxPatch) for p in patches) == 5
    assert sum(isinstance(p, Ellipse) for p in patches) == 3
    assert sum(isinstance(p, FancyArrowPatch) for p in patches) == 8
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "MatMul\n(2, 4)" in texts and "W\n(3, 4)" in texts


def test_matplotlib_draws_on_a_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    assert viz.draw_graph(x.exp().sum(), ax=ax) is fig
    assert sum(isinstance(p, FancyBboxPatch) for p in ax.patches) == 2


def test_matplotlib_figure_saves_to_png(mlp, tmp_path):
    y, names = mlp
    path = tmp_path / "graph.png"
    viz.draw_graph(y, names=names).savefig(path, dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_layers_count_the_longest_path_to_the_output():
    x = tl.tensor([1.0], requires_grad=True)
    y = x.exp() * x                             # x feeds Mul directly and through Exp
    graph = viz.build_graph(y)
    layer = viz.layers(graph)
    by_label = {item["label"][0]: layer[id(item)] for item in graph.items.values()}
    assert by_label == {"Mul": 0, "Exp": 1, "(1,)": 2}
    positions = viz.layout(graph)
    xs = {item["label"][0]: positions[id(item)][0] for item in graph.items.values()}
    assert xs["(1,)"] < xs["Exp"] < xs["Mul"]   # data flows left to right


def test_a_5000_op_chain_does_not_hit_the_recursion_limit():
    x = tl.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 0.0
    dot = viz.draw_graph(y, format="dot")
    assert len(dot_edges(dot)) == 5000
    positions = viz.layout(viz.build_graph(y))
    assert len(positions) == 5001


def test_bad_format_and_bad_input_raise_clear_errors():
    x = tl.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="format must be"):
        viz.draw_graph(x, format="svg")
    with pytest.raises(TypeError, match="expected a tinyllm Tensor"):
        viz.draw_graph(np.ones(3))
