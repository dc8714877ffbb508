"""Planted bugs of step decoding: (what is wrong, text of the reference, text replacing it)."""

BUGS = [
    ("the temperature multiplies the logits instead of dividing them",
     "np.asarray(logits, dtype=np.float64) / temperature",
     "np.asarray(logits, dtype=np.float64) * temperature"),
    ("a temperature of 0 is accepted (division by zero later)",
     "    if temperature <= 0:\n", "    if temperature < 0:\n"),
    ("top-k keeps k + 1 tokens (the k-th largest is read one place too far)",
     "kth_largest = np.sort(logits)[::-1][k - 1]", "kth_largest = np.sort(logits)[::-1][k]"),
    ("top-k keeps exactly k tokens by index, dropping ties at the k-th value",
     "    return np.where(logits >= kth_largest, logits, -np.inf)\n",
     "    keep = np.argsort(-logits, kind=\"stable\")[:k]\n"
     "    out = np.full_like(logits, -np.inf)\n"
     "    out[keep] = logits[keep]\n"
     "    return out\n"),
    ("top-p drops the token that crosses p (keeps tokens whose cumulative mass is below p)",
     "smallest_kept = sorted_probs[before < p].min()",
     "smallest_kept = sorted_probs[before + sorted_probs < p].min()"),
    ("top-p keeps the sorted prefix only, dropping tokens tied with the last one kept",
     "    return np.where(probs >= smallest_kept, logits, -np.inf)   # ties with it are kept too\n",
     "    keep = order[before < p]\n"
     "    out = np.full_like(logits, -np.inf)\n"
     "    out[keep] = logits[keep]\n"
     "    return out\n"),
    ("p = 1 is not special-cased (rounding can drop a token of tiny probability)",
     "    if p >= 1.0:\n        return logits.copy()             # the whole distribution, "
     "whatever the rounding\n", ""),
    ("sampling takes the first index with cdf >= u (a token of probability 0 can be drawn)",
     "int(np.argmax(cdf > u * cdf[-1]))", "int(np.argmax(cdf >= u * cdf[-1]))"),
    ("top-p is applied before the temperature",
     "    z = apply_temperature(logits, temperature)\n    if top_k is not None:\n"
     "        z = top_k_filter(z, top_k)\n    if top_p is not None:\n"
     "        z = top_p_filter(z, top_p)\n",
     "    z = np.asarray(logits, dtype=np.float64)\n    if top_p is not None:\n"
     "        z = top_p_filter(z, top_p)\n    z = apply_temperature(z, temperature)\n"
     "    if top_k is not None:\n        z = top_k_filter(z, top_k)\n"),
    ("greedy decoding takes the argmin",
     "best = int(np.argmax(logprobs))", "best = int(np.argmin(logprobs))"),
    ("greedy decoding returns the last step's log-probability as the score",
     "        score += float(logprobs[best])\n", "        score = float(logprobs[best])\n"),
    ("beam search ranks candidates by the last step's log-probability, not the total",
     "candidates.append((ids + [token], score + float(logprob)))",
     "candidates.append((ids + [token], float(logprob)))"),
    ("beam search sorts (score, ids) in reverse, so ties go to the higher token ids",
     "        candidates.sort(key=lambda item: (-item[1], item[0]))\n",
     "        candidates.sort(key=lambda item: (item[1], item[0]), reverse=True)\n"),
    ("beam search keeps only the best extension of each hypothesis",
     "            for token, logprob in enumerate(logprobs):\n"
     "                candidates.append((ids + [token], score + float(logprob)))\n",
     "            token = int(np.argmax(logprobs))\n"
     "            candidates.append((ids + [token], score + float(logprobs[token])))\n"),
    ("beam search accepts a beam_width of 0",
     "    if beam_width < 1:\n        raise ValueError(\"beam_search: beam_width",
     "    if beam_width < 0:\n        raise ValueError(\"beam_search: beam_width"),
]
