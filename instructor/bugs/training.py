"""Planted bugs of step training: (what is wrong, text of the reference, text replacing it)."""

BUGS = [
    ("get_batch's targets are not shifted (y = x: the model learns to copy its input)",
     "data[i + 1:i + 1 + block_size]", "data[i:i + block_size]"),
    ("estimate_loss runs under grad (a graph is built for every batch)",
     "    with no_grad():\n", "    if True:\n"),
    ("train never clears the gradients (each backward adds to all the earlier ones)",
     "        optimizer.zero_grad()\n", ""),
    ("train ignores the learning-rate schedule",
     "        if lr_schedule is not None:\n            optimizer.lr = lr_schedule(step)\n", ""),
    ("train steps the optimizer before backward (with the gradients of no batch)",
     "        loss.backward()\n"
     "        if clip is not None:\n"
     "            clip_grad_norm_(model.parameters(), clip)\n"
     "        optimizer.step()\n",
     "        optimizer.step()\n"
     "        loss.backward()\n"
     "        if clip is not None:\n"
     "            clip_grad_norm_(model.parameters(), clip)\n"),
]
