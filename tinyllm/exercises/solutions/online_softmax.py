"""Reference solution of exercise online_softmax (chapter 11)."""

import numpy as np


def online_softmax(x, block):
    """softmax(x) for x (T,), reading x in blocks of ``block`` with a running max m and a
    running sum l = sum exp(x_j - m) (rescaled by exp(m_old - m_new) when m grows)."""
    x = np.asarray(x, dtype=np.float64)
    m, l = -np.inf, 0.0
    for start in range(0, x.size, block):                     # pass 1: the statistics
        chunk = x[start:start + block]
        m_new = max(m, chunk.max())
        if m_new == -np.inf:
            continue                 # every entry so far is masked: nothing to add yet
        l = l * np.exp(m - m_new) + np.exp(chunk - m_new).sum()
        m = m_new
    y = np.empty_like(x)
    for start in range(0, x.size, block):                     # pass 2: normalise each block
        y[start:start + block] = np.exp(x[start:start + block] - m) / l
    return y
