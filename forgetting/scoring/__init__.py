"""How a model's outputs are produced and scored, below every stage that does either.

Generation (the transformers loop and the ``engine`` specs: hf, vllm), answer matching, multiple-choice
log-likelihood scoring, classifier predictions and their metrics, the refusal judges, and the noise of a
measured rate (``intervals``). The evaluation suites, the rewards, the attacks and training all use these,
so they live here and import only the model, data and device layers.
"""
