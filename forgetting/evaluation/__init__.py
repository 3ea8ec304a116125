"""The ``evaluate`` stage's suites (``suites.EVALUATION_SUITES``), each an ``EvaluationSuite`` spec.

The primitives the suites score with (generation, answer matching, multiple-choice and classifier
scoring, the refusal judges, intervals) live one layer down in ``forgetting.scoring``.
"""
