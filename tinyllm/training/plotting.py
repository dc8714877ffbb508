"""The loss curve of a training run as a PNG (matplotlib's Agg renderer: no window, no display
needed, and no change to pyplot's global state)."""

from pathlib import Path

import numpy as np


def moving_average(values, window):
    """The mean of each run of ``window`` consecutive values (len(values) - window + 1 of
    them); the values themselves when there are fewer than ``window``."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < window or window <= 1:
        return values
    cumulative = np.cumsum(np.concatenate([[0.0], values]))
    return (cumulative[window:] - cumulative[:-window]) / window


def plot_losses(history, path, title="training loss"):
    """Draw the training loss of every step (faint), its moving average, and the validation
    loss at each evaluation (dots) against the step; save to ``path``; return the path.

    history: a dict with "step" and "train_loss" lists, and "val_step" and "val_loss" lists.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    steps, losses = history.get("step", []), history.get("train_loss", [])
    if steps:
        axes.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8)
        window = max(1, len(steps) // 50)
        smooth = moving_average(losses, window)
        axes.plot(steps[len(steps) - len(smooth):], smooth, color="tab:blue",
                  label="train (moving average of %d steps)" % window if window > 1 else "train")
    if history.get("val_step"):
        axes.plot(history["val_step"], history["val_loss"], "o-", color="tab:orange",
                  label="validation")
    axes.set_xlabel("step")
    axes.set_ylabel("loss (nats per token)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if steps or history.get("val_step"):
        axes.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
