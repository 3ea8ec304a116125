"""The studies' grids, one layer above the stages they chain.

``unlearning``: the prune → train → finetune grid ``main`` runs here; ``forgetting``: the collect →
posttrain → evaluate grid; ``slurm``: ``launch``, which renders either grid as Slurm jobs from the same
stage configs, so a grid's wiring is written once for both ways of running it.
"""
