"""``python -m tinyllm demo``: the engine at work in half a minute.

A two-layer network y = W2 tanh(W1 x + b1) + b2 learns the curve sin(3x) from 256 noisy points
by plain gradient descent. On the way it shows the three ideas of the first chapter:

1. the forward pass builds a graph of ops (printed: the ops and their shapes);
2. ``loss.backward()`` fills every parameter's ``.grad`` by the chain rule;
3. ``tinyllm.gradcheck`` confirms those gradients against central differences in float64.

It ends by writing the loss curve to a PNG.
"""

import os

import numpy as np

import tinyllm as tl


def make_data(n=256, seed=0):
    """x in [-1, 1], y = sin(3x) + noise, both (n, 1) float32."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-1, 1, size=(n, 1)), axis=0)
    y = np.sin(3 * x) + 0.05 * rng.standard_normal((n, 1))
    return tl.tensor(x), tl.tensor(y)


def init_params(hidden=32, seed=0):
    """W1 (1, hidden), b1 (hidden,), W2 (hidden, 1), b2 (1,), scaled like PyTorch's Linear."""
    tl.manual_seed(seed)
    return {
        "W1": tl.randn(1, hidden, requires_grad=True),
        "b1": tl.zeros(hidden, requires_grad=True),
        "W2": (tl.randn(hidden, 1) / np.sqrt(hidden)).detach().requires_grad_(),
        "b2": tl.zeros(1, requires_grad=True),
    }


def mlp(x, W1, b1, W2, b2):
    """(N, 1) -> (N, 1): tanh(x W1 + b1) W2 + b2."""
    return (x @ W1 + b1).tanh() @ W2 + b2


def mse(prediction, target):
    return ((prediction - target) ** 2).mean()


def describe_graph(tensor):
    """One line per op of the graph behind ``tensor``: its name and output shape."""
    order = tl.autograd.topological_order(tensor.grad_fn)
    return ["  %-16s -> %s" % (node.function.__name__, node.output_meta[0][0])
            for node in reversed(order)]


def run(steps=2000, lr=0.1, out_dir="out", quiet=False):
    """Train, check gradients, save the plot in ``out_dir`` (made if missing); returns
    (losses, plot path)."""
    from tqdm import tqdm

    say = (lambda *a: None) if quiet else print
    x, y = make_data()
    params = init_params()
    names = ["W1", "b1", "W2", "b2"]

    loss = mse(mlp(x, *(params[n] for n in names)), y)
    say("The graph of one forward pass (%d ops):" % len(describe_graph(loss)))
    for line in describe_graph(loss):
        say(line)

    losses = []
    bar = tqdm(range(steps), desc="gradient descent", disable=quiet)
    for step in bar:
        loss = mse(mlp(x, *(params[n] for n in names)), y)
        for p in params.values():
            p.grad = None
        loss.backward()
        with tl.no_grad():
            for p in params.values():
                p -= lr * p.grad                    # theta <- theta - lr * dL/dtheta
        losses.append(loss.item())
        if step % 100 == 0:
            bar.set_postfix(loss="%.4f" % losses[-1])

    say("loss: %.4f at the start, %.4f after %d steps" % (losses[0], losses[-1], steps))
    say("Gradient check on 16 points (float64 central differences vs autograd):")
    target = y[:16].double()
    for name in names:
        others = dict(params)

        def loss_of(p, name=name):
            others[name] = p
            return mse(mlp(x[:16], *(others[n] for n in names)), target)

        p64 = params[name].double().detach().requires_grad_()
        loss_p = loss_of(p64)
        loss_p.backward()
        numeric = tl.numerical_grad(loss_of, p64.detach())
        error = tl.rel_error(p64.grad, numeric)
        say("  d loss / d %-2s  relative error %.1e  (should be below 1e-6)" % (name, error))
        if error > 1e-6:
            raise AssertionError("gradient check failed for %s" % name)
    os.makedirs(out_dir, exist_ok=True)
    path = save_loss_plot(losses, os.path.join(out_dir, "tinyllm_demo_loss.png"))
    say("loss curve written to %s" % path)
    return losses, path


def save_loss_plot(losses, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(losses)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("mean squared error")
    ax.set_title("tinyllm demo: fitting sin(3x) with a 2-layer network")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
