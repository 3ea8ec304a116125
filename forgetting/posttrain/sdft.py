"""SDFT (Shenfeld et al. 2026, arXiv 2601.19897, "Self-Distillation Enables Continual Learning") through
TRL's ``trl.experimental.sdft.SDFTTrainer``: one model is the student, which answers the plain prompt
on-policy, and its own teacher, which scores the student's response with the reference solution in
context (the same privileged context as π-Distill's teacher, ``pi_distill.HINT_TEMPLATE``). The
student is pulled towards the teacher's next-token distributions; only the student is trained.

TRL's defaults otherwise (top-100 logit distillation, ``distillation_alpha`` 0.5, importance-weight
clip 2); the teacher is the paper's exponential moving average of the student
(``teacher_model_kind="ema"``, TRL's update rate 0.05 every step), where TRL's own default is the frozen
start model.
"""
from __future__ import annotations

from pathlib import Path

from forgetting.posttrain.pi_distill import HINT_TEMPLATE
from forgetting.posttrain.trl_methods import MlflowMetrics, dataset, train, training_arguments


def sdft_rows(data) -> list[dict]:
    """``{"prompt", "privileged_context"}``: the student sees the prompt, the teacher also the reference."""
    return [{"prompt": row["prompt"], "privileged_context": data.domain.reference(row)} for row in data.rows]


def self_distillation(model, tokenizer, data, config, work_dir: Path) -> dict:
    from trl.experimental.sdft import SDFTConfig, SDFTTrainer

    args = training_arguments(SDFTConfig, config, work_dir, config.steps, num_generations=config.num_generations,
                              max_prompt_length=config.max_length, max_completion_length=config.max_new_tokens,
                              teacher_prompt_template=HINT_TEMPLATE, teacher_model_kind="ema", temperature=1.0)
    trainer = SDFTTrainer(model=model, args=args, train_dataset=dataset(sdft_rows(data)), processing_class=tokenizer)
    return train(trainer, work_dir, MlflowMetrics(), "loss") | {"objective": "sdft_loss"}
