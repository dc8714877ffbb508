"""mytl: the deep-learning framework you build in the tinyllm course, one module per step.

Every module imports the ones before it (``from mytl.autograd import Tensor``), so your GPT
runs on your own engine. Check a step with ``python -m tinyllm.exercises check STEP``.
"""
