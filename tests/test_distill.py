"""Knowledge distillation: the loss, a student built from the teacher, and training that lowers the loss."""
import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForSequenceClassification

from forgetting.errors import UsageError
from forgetting.models.weights import count_parameters
from forgetting.training.distill import check_distillation, distill, distillation_loss, student_from_teacher


def tiny_teacher(layers=4):
    config = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=2, head_dim=32, num_labels=2, pad_token_id=0)
    torch.manual_seed(0)
    return LlamaForSequenceClassification(config).eval()


def test_the_loss_mixes_cross_entropy_and_temperature_scaled_kl():
    student = torch.tensor([[1.0, -1.0], [0.5, 2.0]], requires_grad=True)
    teacher = torch.tensor([[3.0, 0.0], [-1.0, 1.0]], requires_grad=True)
    labels = torch.tensor([0, 1])
    assert torch.isclose(distillation_loss(student, teacher, labels, 1.0, 2.0), F.cross_entropy(student, labels))
    assert distillation_loss(teacher, teacher, labels, 0.0, 3.0).abs() < 1e-6
    p, q = F.softmax(teacher / 2, -1), F.softmax(student / 2, -1)
    by_hand = 4 * (p * (p.log() - q.log())).sum(-1).mean()
    loss = distillation_loss(student, teacher, labels, 0.0, 2.0)
    assert torch.isclose(loss, by_hand)
    loss.backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None


@pytest.mark.parametrize("alpha, temperature, parameter", [(-0.1, 1, "alpha"), (1.5, 1, "alpha"),
                                                           (0.5, 0, "temperature"), (0.5, -1, "temperature")])
def test_bad_alpha_or_temperature_is_refused(alpha, temperature, parameter):
    with pytest.raises(UsageError, match=f"^{parameter}="):
        check_distillation(alpha, temperature)


def test_a_student_copies_evenly_spaced_teacher_layers():
    teacher = tiny_teacher()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = student_from_teacher(teacher, 2)
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 4
    for position, layer in enumerate((0, 3)):
        assert torch.equal(student.model.layers[position].mlp.up_proj.weight,
                           teacher.model.layers[layer].mlp.up_proj.weight)
    assert torch.equal(student.score.weight, teacher.score.weight)
    assert torch.equal(student.model.embed_tokens.weight, teacher.model.embed_tokens.weight)
    assert count_parameters(student) < count_parameters(teacher)
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    assert student(input_ids=ids, attention_mask=(ids != 0).long()).logits.shape == (2, 2)
    for layers in (0, 4):
        with pytest.raises(UsageError, match=r"student_layers=\d must be in \[1, 4\)"):
            student_from_teacher(teacher, layers)


def test_distill_lowers_the_loss_and_leaves_the_teacher_alone():
    teacher = tiny_teacher()
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 64, (64, 12), generator=generator)
    labels = (ids == 5).any(1).long()
    data = [{"input_ids": ids[i:i + 16], "attention_mask": torch.ones_like(ids[i:i + 16]), "labels": labels[i:i + 16]}
            for i in range(0, 64, 16)]
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = student_from_teacher(teacher, 1)
    with torch.no_grad():
        student.score.weight.normal_()  # start away from the teacher so there is something to learn
    losses = distill(student, teacher, lambda: data, steps=40, lr=3e-3, alpha=0.5, temperature=2.0)
    assert len(losses) == 40 and sum(losses[-5:]) < sum(losses[:5])
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
