"""Drawing the computation graph behind a tensor.

    y = (x @ W + b).tanh().sum()
    tinyllm.viz.draw_graph(y, names={x: "x", W: "W", b: "b"})

The picture has one box per recorded op (labelled with the op's name and the shape of what it
produced) and one ellipse per leaf tensor (labelled with its shape, and its name if you give
one). Arrows point the way data flows in the forward pass: from the leaves, through the ops, to
the output on the right. ``backward()`` walks the same arrows the other way, from the output
back to the leaves, multiplying by each op's local derivative as it goes.

Only what ``backward`` can reach is drawn: a constant or a tensor with ``requires_grad=False``
is not recorded in the graph, so it does not appear. A value used twice (``x * x``, or a
sub-expression shared by two ops) is drawn once, with one arrow per use.
"""

import numpy as np

from tinyllm.autograd import Tensor, topological_order


# ----- the graph as plain data ---------------------------------------------------------------
class _Graph:
    """What is drawn: ``items`` (ops and leaves), ``arrows`` between them, and the ``output``.

    Each item is a dict with ``kind`` ("op" or "leaf") and ``label`` (a list of lines);
    ``arrows`` holds (from item, to item, output index or None) triples, inputs to ops.
    """

    def __init__(self):
        self.items = {}         # id of a Node or leaf Tensor -> item
        self.arrows = []
        self.output = None      # the item of the op (or leaf) that made the tensor drawn


def _shape_text(shape):
    return str(tuple(int(n) for n in shape))


def _op_label(node, output_names, show_shapes):
    """The op's name, then a line per output: its number (if several), name (if given), shape."""
    lines = [node.function.__name__]
    for i, (shape, _) in enumerate(node.output_meta):
        words = ["[%d]" % i] if len(node.output_meta) > 1 else []
        name = output_names.get((id(node), i))
        if name:
            words.append(name + ":" if show_shapes else name)
        if show_shapes:
            words.append(_shape_text(shape))
        if words:
            lines.append(" ".join(words))
    return lines


def _leaf_label(tensor, leaf_names, show_shapes):
    lines = []
    if id(tensor) in leaf_names:
        lines.append(leaf_names[id(tensor)])
    if show_shapes or not lines:
        lines.append(_shape_text(tensor.shape))
    return lines


def build_graph(tensor, names=None, show_shapes=True):
    """Collect the ops and leaves behind ``tensor`` without recursion (a loop over the
    topological order), so a graph of any depth can be drawn."""
    leaf_names, output_names = {}, {}
    for t, name in (names or {}).items():
        if t.grad_fn is None:
            leaf_names[id(t)] = str(name)
        else:
            output_names[(id(t.grad_fn), t._output_index)] = str(name)

    graph = _Graph()
    if tensor.grad_fn is None:              # a leaf on its own: nothing was recorded
        graph.output = {"kind": "leaf", "label": _leaf_label(tensor, leaf_names, show_shapes)}
        graph.items[id(tensor)] = graph.output
        return graph

    order = topological_order(tensor.grad_fn)   # consumers before producers
    for node in order:
        graph.items[id(node)] = {"kind": "op",
                                 "label": _op_label(node, output_names, show_shapes)}
    for node in order:
        for edge in node.edges:
            if edge is None:                # an input that needs no gradient: not recorded
                continue
            if type(edge) is tuple:
                producer, index = edge
                source = graph.items[id(producer)]
                index = index if len(producer.output_meta) > 1 else None
            else:
                if id(edge) not in graph.items:
                    graph.items[id(edge)] = {"kind": "leaf",
                                             "label": _leaf_label(edge, leaf_names, show_shapes)}
                source, index = graph.items[id(edge)], None
            graph.arrows.append((source, graph.items[id(node)], index))
    graph.output = graph.items[id(tensor.grad_fn)]
    return graph


# ----- DOT text ------------------------------------------------------------------------------
def _quote(lines):
    text = "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in lines)
    return '"%s"' % text


def to_dot(graph):
    """The graph in Graphviz's DOT language (render it with ``dot -Tpng``, or paste it into
    any online Graphviz viewer)."""
    # Listed as data flows: the leaves, then the ops from the first one run to the output.
    items = [item for item in graph.items.values() if item["kind"] == "leaf"] + \
        [item for item in graph.items.values() if item["kind"] == "op"][::-1]
    ids = {id(item): "n%d" % k for k, item in enumerate(items)}
    lines = ["digraph {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for item in items:
        shape = "box" if item["kind"] == "op" else "ellipse"
        extra = ", penwidth=2" if item is graph.output else ""
        lines.append("  %s [shape=%s, label=%s%s];" % (ids[id(item)], shape,
                                                       _quote(item["label"]), extra))
    rank = {id(item): k for k, item in enumerate(items)}
    for source, target, index in sorted(graph.arrows, key=lambda arrow: rank[id(arrow[1])]):
        label = "" if index is None else ' [label="%d"]' % index
        lines.append("  %s -> %s%s;" % (ids[id(source)], ids[id(target)], label))
    lines.append("}")
    return "\n".join(lines) + "\n"


# ----- a layered layout for matplotlib -------------------------------------------------------
def layers(graph):
    """Layer of each item: its longest distance (in arrows) from the output, which is layer 0.

    Arrows go from a higher layer to a lower one, so drawing layer L at x = (deepest layer - L)
    points every arrow to the right, with the leaves on the left and the output on the right.
    """
    layer = {id(graph.output): 0}
    # The arrows were listed consumer by consumer in topological order (consumers before
    # producers), so each op's layer is final before its own input arrows are relaxed.
    for source, target, _ in graph.arrows:
        layer[id(source)] = max(layer.get(id(source), 0), layer[id(target)] + 1)
    return layer


def layout(graph):
    """(x, y) of every item: x from its layer, y from its place in the layer. Items are
    ordered within a layer by the mean height of the items they feed (fewer crossings)."""
    layer = layers(graph)
    by_layer = {}
    for item in graph.items.values():
        by_layer.setdefault(layer[id(item)], []).append(item)
    consumers = {}
    for source, target, _ in graph.arrows:
        consumers.setdefault(id(source), []).append(target)

    position = {}
    depth = max(by_layer)
    for L in range(depth + 1):
        row = by_layer.get(L, [])
        if L > 0:
            row.sort(key=lambda item: np.mean([position[id(c)][1]
                                               for c in consumers[id(item)]]))
        for k, item in enumerate(row):
            position[id(item)] = (float(depth - L), (len(row) - 1) / 2.0 - k)   # top down
    return position


def draw_matplotlib(graph, ax=None):
    """Boxes, ellipses and arrows with matplotlib patches; returns the Figure."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse, FancyArrowPatch, FancyBboxPatch

    position = layout(graph)
    xs = [p[0] for p in position.values()]
    ys = [p[1] for p in position.values()]
    x_gap, y_gap, width, height = 2.6, 1.3, 1.9, 0.9     # in data units
    if ax is None:
        columns, rows = max(xs) + 1, max(ys) - min(ys) + 1
        fig = Figure(figsize=(min(2.2 * columns, 60), min(1.1 * rows + 0.5, 60)))   # inches
        ax = fig.add_subplot()
    fig = ax.figure

    def centre(item):
        x, y = position[id(item)]
        return x * x_gap, y * y_gap

    for item in graph.items.values():
        cx, cy = centre(item)
        edge = 2.0 if item is graph.output else 1.0
        if item["kind"] == "op":
            patch = FancyBboxPatch((cx - width / 2, cy - height / 2), width, height,
                                   boxstyle="round,pad=0.02", facecolor="#dbe9f6",
                                   edgecolor="black", linewidth=edge)
        else:
            patch = Ellipse((cx, cy), width, height, facecolor="#f6f0db", edgecolor="black",
                            linewidth=edge)
        ax.add_patch(patch)
        ax.text(cx, cy, "\n".join(item["label"]), ha="center", va="center", fontsize=8)

    uses = {}
    for source, target, index in graph.arrows:
        (x0, y0), (x1, y1) = centre(source), centre(target)
        # A value used twice by one op (x * x) gets a second, curved arrow.
        k = uses[(id(source), id(target))] = uses.get((id(source), id(target)), -1) + 1
        bend = 0.0 if k == 0 else 0.3 * ((k + 1) // 2) * (1 if k % 2 else -1)
        if k == 0 and x1 - x0 > 1.5 * x_gap:   # skips a column: curve around the boxes there
            bend = 0.7 if y0 < y1 else -0.7
        arrow = FancyArrowPatch((x0 + width / 2, y0), (x1 - width / 2, y1),
                                connectionstyle="arc3,rad=%g" % bend,
                                arrowstyle="-|>", mutation_scale=10, color="0.3")
        ax.add_patch(arrow)
        if index is not None:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, str(index), fontsize=7, color="0.3")

    ax.set_xlim(min(xs) * x_gap - width, max(xs) * x_gap + width)
    ax.set_ylim(min(ys) * y_gap - height, max(ys) * y_gap + height)
    ax.set_axis_off()
    return fig


# ----- the entry point -----------------------------------------------------------------------
def draw_graph(tensor, format="matplotlib", ax=None, show_shapes=True, names=None):
    """Draw the graph that ``backward()`` would walk from ``tensor``.

    What the picture shows: one box per op (its name, e.g. ``MatMul``, and the shape it
    produced), one ellipse per leaf tensor that requires grad (its shape, and its name from
    ``names``), and an arrow from each input to the op that used it. Data flows along the
    arrows, leaves -> output (the output's op has a thick border); the backward pass goes the
    other way, from the output back to every leaf. Shared values are drawn once, with one arrow
    per use; an arrow out of an op with several outputs (``split``) is labelled with the output
    number.

    Args:
        tensor: the Tensor whose graph to draw (usually a loss).
        format: ``"matplotlib"`` (returns a ``matplotlib.figure.Figure``) or ``"dot"``
            (returns Graphviz DOT text, a ``str``).
        ax: a matplotlib Axes to draw on (matplotlib format only); a new Figure if None.
        show_shapes: put shapes in the labels.
        names: optional ``{tensor: "name"}``; a leaf's name labels its ellipse, a non-leaf's
            name labels the output of the op that made it.

    The graph is walked with loops, not recursion, so a chain of thousands of ops works (the
    matplotlib picture of such a chain is, of course, too wide to read: use DOT for those).
    """
    if not isinstance(tensor, Tensor):
        raise TypeError("draw_graph: expected a tinyllm Tensor, got %s" % type(tensor).__name__)
    if format not in ("matplotlib", "dot"):
        raise ValueError('draw_graph: format must be "matplotlib" or "dot", got %r' % (format,))
    graph = build_graph(tensor, names, show_shapes)
    if format == "dot":
        return to_dot(graph)
    return draw_matplotlib(graph, ax)
