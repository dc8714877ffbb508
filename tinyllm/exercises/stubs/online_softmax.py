"""Exercise online_softmax (chapter 11, Kernels and performance).

Write softmax the way FlashAttention reads a row: block by block, keeping only a running max
and a running sum. Check it with:

    python -m tinyllm.exercises check online_softmax this_file.py
"""

import numpy as np


def online_softmax(x, block):
    """softmax(x) for x (T,), reading x in blocks of ``block`` entries (the last block may be
    shorter). Returns a new array (T,).

    Pass 1, one sweep over the blocks, keeping two numbers (m = -inf, l = 0 at the start):
        for each block x_B:
            m_new = max(m, max(x_B))
            l = l * exp(m - m_new) + sum(exp(x_B - m_new))     rescale the old sum to m_new
            m = m_new
    Afterwards m = max(x) and l = sum_j exp(x_j - m).

    Pass 2, block by block: y_B = exp(x_B - m) / l.

    Never compute exp of the whole row at once (that is the point: a block at a time fits in
    fast memory). Entries may be -inf (masked); a first block that is entirely -inf must not
    produce NaN (exp(-inf - (-inf)) is NaN: skip the rescaling while m is still -inf).
    """
    raise NotImplementedError
