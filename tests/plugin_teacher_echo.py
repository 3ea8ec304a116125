"""A post-training method written as a user would add one: this file plus one registration line.

``teacher-echo`` learns from a cross-family teacher's correct responses (collected ``sft`` rows) and
changes nothing: its objective is the share of those rows it has not read, 1 before and 0 after, so
the test can see the collected rows reach it without training a model.
"""


def train(model, tokenizer, data, config, work_dir) -> dict:
    return {"objective": "unread_share", "objective_start": 1.0, "objective_end": 0.0,
            "objective_higher_is_better": 0.0, "rows_read": float(len(data.collected))}
