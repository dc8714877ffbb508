"""Planted bugs of step bpe: (what is wrong, text of the reference, text replacing it)."""

BUGS = [
    ("ties go to the smallest byte strings",
     "        pair = max(counts, key=lambda p: (counts[p], vocab[p[0]], vocab[p[1]]))\n",
     "        pair = min(counts, key=lambda p: (-counts[p], vocab[p[0]], vocab[p[1]]))\n"),
    ("ties compared by ids, not by the byte strings the ids spell",
     "key=lambda p: (counts[p], vocab[p[0]], vocab[p[1]])", "key=lambda p: (counts[p], p)"),
    ("no tie-break: the pair that occurs first wins",
     "key=lambda p: (counts[p], vocab[p[0]], vocab[p[1]])", "key=counts.get"),
    ("pairs counted without overlap ('aaa' counts (a, a) once)",
     "    return Counter(zip(ids, ids[1:]))\n",
     "    counts = Counter()\n    i = 0\n    while i + 1 < len(ids):\n"
     "        counts[ids[i], ids[i + 1]] += 1\n"
     "        i += 2 if ids[i] == ids[i + 1] else 1\n    return counts\n"),
    ("after a replacement the next position is not skipped ('aaa' becomes [aa, aa, a])",
     "            out.append(new_id)\n            i += 2\n",
     "            out.append(new_id)\n            i += 1\n"),
    ("encode applies the merges from the last learned to the first",
     "    for index, pair in enumerate(merges):\n"
     "        ids = _merge(ids, tuple(pair), 256 + index)\n",
     "    for index, pair in reversed(list(enumerate(merges))):\n"
     "        ids = _merge(ids, tuple(pair), 256 + index)\n"),
    ("encode uses the characters' code points instead of the UTF-8 bytes",
     "    ids = list(text.encode(\"utf-8\"))\n    for index, pair in enumerate(merges):",
     "    ids = [ord(ch) for ch in text]\n    for index, pair in enumerate(merges):"),
    ("decode decodes each token's bytes on its own, breaking characters split between tokens",
     "    return b\"\".join(pieces).decode(\"utf-8\", errors=\"replace\")\n",
     "    return \"\".join(p.decode(\"utf-8\", errors=\"replace\") for p in pieces)\n"),
    ("decode lets negative ids index the vocabulary from the end",
     "        if not 0 <= i < len(vocab):\n", "        if i >= len(vocab):\n"),
    ("a vocab_size below 256 is accepted",
     "    if vocab_size < 256:\n        raise", "    if vocab_size < 0:\n        raise"),
    ("training does not stop when no pair is left",
     "        if not counts:\n            break\n", ""),
    ("the new id is numbered from 255",
     "        new_id = len(vocab)\n", "        new_id = len(vocab) - 1\n"),
]
