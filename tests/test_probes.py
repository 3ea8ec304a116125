import numpy as np
from transformers import AutoTokenizer

from forgetting.data.loading import load_task
from forgetting.evaluation.probes import fact_statements, probe_accuracy, probe_layers
from forgetting.models.bundled import bundled_model_dir
from forgetting.models.tiny import tiny_llama


def test_statements_hold_out_whole_entities_and_fix_control_labels():
    facts = list(load_task("facts", "all"))
    statements = fact_statements(facts, seed=0)
    assert len(statements.texts) == 2 * len(facts) and statements.labels.mean() == 0.5
    by_subject = {}
    for index, fact in enumerate(facts):
        by_subject.setdefault(fact["subject"], set()).update(statements.held_out[2 * index:2 * index + 2])
    assert all(len(sides) == 1 for sides in by_subject.values())
    assert 0.2 < statements.held_out.mean() < 0.4
    control = {}
    for text, label, fact_index in zip(statements.texts, statements.control_labels, np.repeat(range(len(facts)), 2)):
        target = text[len(facts[fact_index]["prompt"]):-1].strip()
        assert control.setdefault(target, label) == label


def test_probe_separates_a_direction_and_not_noise():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    features = rng.normal(size=(400, 16))
    features[:, 3] += 3 * labels
    held_out = np.arange(400) % 4 == 0
    assert probe_accuracy(features, labels, held_out, c=1.0) > 0.9
    assert probe_accuracy(features, rng.integers(0, 2, 400), held_out, c=1.0) < 0.7


def test_probe_layers_cover_every_layer():
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir())
    model = tiny_llama(vocab_size=len(tokenizer), seed=0).eval()
    facts = list(load_task("facts", "all"))[:60]
    rows = probe_layers(model, tokenizer, fact_statements(facts), batch_size=32)
    assert [row["layer"] for row in rows] == list(range(model.config.num_hidden_layers + 1))
    assert all(row["selectivity"] == row["accuracy"] - row["control_accuracy"] for row in rows)
