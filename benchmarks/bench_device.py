"""Every stage's inner loop on a GPU: CPU-vs-CUDA numbers on the tiny model, then speed against the plain tools.

One prepared run (about 7 minutes with the defaults on one H200; ``--budget-s`` sets the target)
with nothing to download: the models are random-init and the tokenizer is a word-level one built in
memory (``w0 w1 ...``, one token a word), so it needs torch, transformers, numpy and this working
tree only. lm-evaluation-harness (and ``accelerate``, which both lm-eval and ``transformers.Trainer``
need) are optional: a comparison whose package is missing prints a ``skipped`` line.

1. Correctness (tiny Llama, hidden 64, 2 layers): each inner loop runs once under the policy
   ``device=cpu`` and once under ``--device``, on a fresh copy of the same weights, with the inputs
   built on the CPU as the stages build them (so a loop that does not move its batch to
   ``model.device`` fails here). One line a check: the largest difference (absolute, or relative to
   the CPU result's largest magnitude where marked ``rel``), the tolerance and PASS / FAIL / SKIP.
   Checked (fp32 unless noted): forward logits (also under bf16 autocast); ``optimizer_step`` (3
   steps' losses); ``heldout_loss``; fine-tuning ``finetune_on_answers``; a tiny Llama classifier's
   ``train_classifier``, ``predict`` and ``distill`` (to a one-layer student);
   multiple-choice ``question_logprobs``; greedy ``generate`` (completions that differ);
   ``last_token_states`` (probes); pruning ``score_neurons`` (attribution); ``example_losses``,
   ``per_example_dot`` (TracIn) and ``unlearned_copy`` (UnTrac); GCG ``token_gradients``,
   ``target_losses`` and one ``gcg`` step (its loss shown, not judged: candidate sampling follows
   gradient ranks, so near-ties may pick different candidates).

2. Speed, random-init ``LlamaForCausalLM`` with real shapes: the default model's config (SmolLM2-135M)
   and a 1.7B-class Llama (SmolLM2-1.7B), fp32 weights under ``--precision`` (bf16 autocast), each
   workload measured side by side in this run, after untimed warm-up, with the device synchronised:

   - training: ``optimizer_step`` with ``adamw_with_warmup`` vs ``transformers.Trainer`` (same
     batches, AdamW ``adamw_torch``, linear schedule, clipping 1.0, ``bf16=True``), same step count;
   - multiple-choice scoring: ``question_logprobs`` (one packed sequence a question) vs lm-eval's
     ``HFLM(pretrained=model).loglikelihood`` on the same (context, choice) requests, its batch =
     the project's batch x choices (the same questions per forward);
   - generation: the evaluate stage's ``generate`` vs ``model.generate`` (greedy, same prompts in
     the same length-sorted batches, same ``max_new_tokens``).

   Sizes (``Sizes``): training 8 x 1024-token blocks, up to 60 timed steps after 3; scoring 128
   questions of 128-256 context words and 4 choices of 4-16 words, 16 questions a batch; generation
   64 prompts of 64-128 words, 32 a batch, 128 new tokens. Each timed side repeats as often as its
   share of the remaining budget allows (at least once).

   tokens/s: training, batch x block tokens a step; scoring, the request tokens (context + choice,
   once per choice: what lm-eval forwards), the same numerator for both sides so the ratio is the
   time ratio; generation, new tokens each side generated.

   MFU = model FLOPs / seconds / (``--peak-tflops`` x 1e12), the default 989 = H200 dense bf16.
   Model FLOPs (PaLM, Chowdhery et al. 2022, appendix B), counted on the tokens each side actually
   forwards, padding excluded: N = weights of every matmul (each ``nn.Linear``, the output head
   included, the embedding lookup not), L layers, a = heads x head_dim, T the sequence length,
   V x d the output head:

   - training: (6·N + 12·L·a·T) a token;
   - a forward pass (scoring, prompt prefill): 2·(N - V·d) + 4·L·a·T a token, plus 2·V·d for each
     position that goes through the output head (all for lm-eval, the scored ones for the project,
     the last one for prefill);
   - a decoding step at context length c: 2·N + 4·L·a·c (new tokens spread evenly over prompts).

   Attention is counted over the full T x T (as PaLM does), so MFU is comparable between sides.

    python benchmarks/bench_device.py                       # GPU machine, ~7 min
    python benchmarks/bench_device.py --device cpu --smoke  # this laptop, < 2 min

Exit status: 1 if a correctness check FAILs or a speed measurement raises, 0 otherwise (SKIP
lines do not count); ``--device`` that is not on the machine is a one-line error, status 2.
"""
from __future__ import annotations

import os

for _name, _value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"),
                      ("TQDM_DISABLE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_name, _value)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import gc  # noqa: E402
import inspect  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402

from forgetting import device as policy  # noqa: E402
from forgetting.errors import UsageError  # noqa: E402

SPECIALS = ("<pad>", "<|endoftext|>", "<unk>", "!")  # "!" is GCG's starting suffix token

# Real shapes, no weights: the default model (SmolLM2-135M) and SmolLM2-1.7B.
SPEED_CONFIGS = {
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, head_dim=64, rope_theta=100000.0),
    "llama-1.7b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                       num_key_value_heads=32, head_dim=64, rope_theta=130000.0),
}
SMOKE_CONFIGS = {
    "smollm2-135m (smoke: shrunk)": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, head_dim=16),
    "llama-1.7b (smoke: shrunk)": dict(hidden_size=96, intermediate_size=256, num_hidden_layers=3,
                                       num_attention_heads=4, num_key_value_heads=4, head_dim=24),
}

FAILURES: list[str] = []


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160] if text else ''}"


def missing_package(error: BaseException) -> str | None:
    """The package an ImportError (possibly wrapped) says is missing, else None."""
    while error is not None:
        if isinstance(error, ImportError):
            named = getattr(error, "name", None) or re.search(r"requires `?([A-Za-z0-9_.-]+)", str(error))
            return named if isinstance(named, str) else named.group(1) if named else first_line(error)
        error = error.__cause__ or error.__context__
    return None


# ----------------------------------------------------------------------------------------------
# A tokenizer that needs no file: one word a token.


def word_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """``<pad> <|endoftext|> <unk> ! w0 w1 ...`` up to ``vocab_size`` tokens, split on whitespace."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = list(SPECIALS) + [f"w{i}" for i in range(vocab_size - len(SPECIALS))]
    core = Tokenizer(models.WordLevel({word: i for i, word in enumerate(words)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<|endoftext|>",
                                   unk_token="<unk>")


def words(rng: np.random.Generator, vocab_size: int, count: int) -> str:
    return " ".join(f"w{i}" for i in rng.integers(0, vocab_size - len(SPECIALS), count))


def with_end_ids(model, tokenizer):
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


# ----------------------------------------------------------------------------------------------
# Part 1: CPU vs device on the tiny model.


def flat(value) -> np.ndarray:
    """Any result (tensor, array, number, nested lists, NeuronScores) as one float64 vector."""
    if hasattr(value, "scores") and isinstance(value.scores, list):  # NeuronScores
        value = value.scores
    if isinstance(value, torch.Tensor):
        return value.detach().double().cpu().flatten().numpy()
    if isinstance(value, (list, tuple)):
        parts = [flat(item) for item in value]
        return np.concatenate(parts) if parts else np.zeros(0)
    return np.asarray(value, dtype=np.float64).flatten()


@dataclass
class Check:
    name: str
    run: Callable[[torch.device], object]  # the result on that device; inputs built on the CPU
    tolerance: float | None  # None: informational
    kind: str = "abs"      # abs | rel | mismatches


def run_under(spec: str, fn, seed: int = 0):
    """``fn(device)`` with the process's policy selected for ``spec`` (fp32)."""
    policy.select(spec, "fp32")
    torch.manual_seed(seed)
    return fn(policy.current().device)


def run_check(check: Check, device_spec: str) -> None:
    label = f"{check.name:<46}"
    side = "cpu"
    try:
        reference = run_under(side, check.run)
        side = device_spec
        result = run_under(side, check.run)
    except Exception as error:  # noqa: BLE001: one check must not stop the others
        package = missing_package(error)
        if package is not None:
            print(f"{label} {'':>10}  skipped: needs {package}")
            return
        print(f"{label} {'error':>10}  FAIL  on {side}: {first_line(error)}")
        FAILURES.append(check.name)
        return
    if check.kind == "mismatches":
        diff = sum(a != b for a, b in zip(reference, result)) + abs(len(reference) - len(result))
        shown = f"{diff}/{len(reference)}"
    else:
        a, b = flat(reference), flat(result)
        if a.shape != b.shape:
            print(f"{label} {'shape':>10}  FAIL  cpu {a.shape} vs device {b.shape}")
            FAILURES.append(check.name)
            return
        diff = float(np.abs(a - b).max()) if a.size else 0.0
        if not np.isfinite(b).all():
            diff = float("inf")
        if check.kind == "rel":
            diff /= max(float(np.abs(a).max()) if a.size else 0.0, 1e-30)
        shown = f"{diff:.2e}"
    if check.tolerance is None:
        print(f"{label} {shown:>10}  (shown, not judged)")
        return
    ok = diff <= check.tolerance
    tolerance = f"{check.kind} {check.tolerance:g}" if check.kind != "mismatches" else "exact"
    print(f"{label} {shown:>10}  tol {tolerance:<10} {'PASS' if ok else 'FAIL'}")
    if not ok:
        FAILURES.append(check.name)


def correctness_checks(tokenizer, base) -> list[Check]:
    """Every inner loop with the tiny model; inputs are CPU tensors or strings, as stages build them."""
    vocab = len(tokenizer)
    rng = np.random.default_rng(0)
    generator = torch.Generator().manual_seed(0)
    blocks = torch.randint(len(SPECIALS), vocab, (6, 32), generator=generator)
    texts = [words(rng, vocab, int(rng.integers(5, 30))) for _ in range(8)]
    questions = [(words(rng, vocab, int(rng.integers(4, 24))),
                  [" " + words(rng, vocab, int(rng.integers(1, 6))) for _ in range(4)]) for _ in range(6)]
    rows = [{"id": str(i), "prompt": prompt, "choices": choices, "label": i % 4}
            for i, (prompt, choices) in enumerate(questions)]

    def fresh(device):
        return copy.deepcopy(base).to(device)

    def lm_batches(count=None):
        from forgetting.training.corpus import lm_batches as batches

        return list(batches(blocks if count is None else blocks[:count], 2))

    def forward(device, precision="fp32"):
        model = fresh(device)
        batch = lm_batches()[0]
        with torch.no_grad(), policy.autocast(precision, model.device):
            return model(**policy.on_device(batch, model.device)).logits.float()

    def train(device):
        from forgetting.training.optimizer import adamw_with_warmup, optimizer_step

        model = fresh(device)
        optimizer, scheduler = adamw_with_warmup(model, 1e-3, 3)
        return [optimizer_step(model, batch, optimizer, scheduler, "fp32") for batch in lm_batches()]

    def heldout(device):
        from forgetting.training.loss import heldout_loss

        return heldout_loss(fresh(device), lm_batches(), "fp32")

    def finetune(device):
        from forgetting.training.finetune import finetune_on_answers

        return finetune_on_answers(fresh(device), tokenizer, rows, lr=1e-3, epochs=1, batch_size=3)

    classified = [{"text": text, "label": i % 3} for i, text in enumerate(texts)]

    def classifier(device):
        from transformers import LlamaForSequenceClassification

        torch.manual_seed(0)
        config = copy.deepcopy(base.config)
        config.num_labels, config.pad_token_id = 3, tokenizer.pad_token_id
        return LlamaForSequenceClassification(config).to(device)

    def classifier_batches():
        from forgetting.data.classification import classification_batches

        return list(classification_batches(tokenizer, classified, 3, torch.Generator().manual_seed(0)))

    def train_classifier(device):
        from forgetting.training.classifier import train_classifier as train_it

        return train_it(classifier(device), tokenizer, classified, lr=1e-3, max_steps=3, batch_size=3).losses

    def predict(device):
        from forgetting.scoring.classification import predict as predict_with

        return predict_with(classifier(device), tokenizer, classified, batch_size=3)

    def distill(device):
        from forgetting.training.distill import distill, student_from_teacher

        teacher = classifier(device)
        student = student_from_teacher(teacher, 1)
        return distill(student, teacher, classifier_batches, steps=2, lr=1e-3, alpha=0.5, temperature=2.0)

    def multiple_choice(device):
        from forgetting.scoring.multiple_choice import question_logprobs

        return question_logprobs(fresh(device), tokenizer, questions, batch_size=4, precision="fp32")[0]

    def generation(device):
        from forgetting.scoring.generation import generate

        return generate(fresh(device), tokenizer, texts, max_new_tokens=12, batch_size=4, precision="fp32")[0]

    def probes(device):
        from forgetting.evaluation.probes import last_token_states

        return last_token_states(fresh(device), tokenizer, texts, batch_size=4, precision="fp32")

    def pruning(device):
        from forgetting.pruning.attribution import score_neurons

        return score_neurons(fresh(device), lm_batches(4), precision="fp32")

    def encoded():
        from forgetting.attribution.examples import encode_examples

        train = encode_examples(tokenizer, [{"source": "s", "text": text} for text in texts[:6]])
        test = encode_examples(tokenizer, [{"prompt": p, "completion": c[0]} for p, c in questions[:3]])
        return train, test

    def losses(device):
        from forgetting.attribution.examples import example_losses

        return example_losses(fresh(device), encoded()[0], batch_size=4)

    def tracin(device):
        from forgetting.attribution.gradients import per_example_dot

        train, test = encoded()
        return per_example_dot(fresh(device), train, test, batch_size=4)

    def untrac(device):
        from forgetting.attribution.examples import example_losses
        from forgetting.attribution.unlearn import unlearned_copy

        train, test = encoded()
        return example_losses(unlearned_copy(fresh(device), train, lr=1e-3, steps=2, batch_size=4), test)

    gcg_rng = np.random.default_rng(1)
    behaviour_texts = [(words(gcg_rng, vocab, 6), words(gcg_rng, vocab, 4)) for _ in range(2)]

    def gcg_setup():
        from forgetting.attacks.gcg import initial_suffix, layout
        from forgetting.attacks.prompts import Behaviour

        behaviours = [Behaviour(str(i), request, target) for i, (request, target) in enumerate(behaviour_texts)]
        return behaviours, [layout(tokenizer, b) for b in behaviours], initial_suffix(tokenizer, 5)

    def token_gradients(device):
        from forgetting.attacks.gcg import token_gradients as gradients

        _, layouts, suffix = gcg_setup()
        return gradients(fresh(device), layouts, suffix)

    def target_losses(device):
        from forgetting.attacks.prompts import target_losses as losses_of

        _, layouts, suffix = gcg_setup()
        candidates = torch.randint(len(SPECIALS), vocab, (8, len(suffix)), generator=torch.Generator().manual_seed(2))
        return losses_of(fresh(device), layouts[0].rows(candidates), len(layouts[0].target), batch_size=4)

    def gcg_step(device):
        from forgetting.attacks.gcg import GCGConfig, gcg

        behaviours, _, _ = gcg_setup()
        return gcg(fresh(device), tokenizer, behaviours, GCGConfig(steps=1, suffix_length=5, top_k=8, batch=8)).losses

    return [
        Check("forward logits", forward, 1e-3),
        Check("forward logits, bf16 autocast", lambda d: forward(d, "bf16-autocast"), 5e-2, "rel"),
        Check("train: optimizer_step (3 losses)", train, 1e-3),
        Check("train: heldout_loss", heldout, 1e-3),
        Check("finetune: finetune_on_answers (loss)", finetune, 1e-3),
        Check("classify: train_classifier (3 losses)", train_classifier, 1e-3),
        Check("classify: predict (labels differing)", predict, 0, "mismatches"),
        Check("distill: distill, classifier (2 losses)", distill, 1e-3),
        Check("evaluate: question_logprobs (MC scores)", multiple_choice, 1e-3),
        Check("evaluate: generate (completions differing)", generation, 0, "mismatches"),
        Check("evaluate: last_token_states (probes)", probes, 1e-3, "rel"),
        Check("prune: attribution score_neurons", pruning, 1e-3, "rel"),
        Check("attribute: example_losses", losses, 1e-3),
        Check("attribute: per_example_dot (TracIn)", tracin, 1e-3, "rel"),
        Check("attribute: unlearned_copy (UnTrac losses)", untrac, 1e-3),
        Check("attack: GCG token_gradients", token_gradients, 1e-3, "rel"),
        Check("attack: target_losses (GCG candidates)", target_losses, 1e-3),
        Check("attack: gcg, 1 step (loss)", gcg_step, None),
    ]


def part_one(device_spec: str) -> None:
    from forgetting.models.attention import use_on
    from forgetting.models.tiny import tiny_llama

    tokenizer = word_tokenizer(256)
    # the attention load_model gives: eager on the CPU side at these sizes, SDPA on the GPU side
    base = with_end_ids(use_on(tiny_llama(vocab_size=len(tokenizer))), tokenizer)
    print(f"\n## 1. CPU vs {device_spec}: the stages' inner loops on the tiny Llama "
          f"(vocab {len(tokenizer)}, fp32 unless noted)\n")
    print(f"{'check':<46} {'max diff':>10}")
    for check in correctness_checks(tokenizer, base):
        run_check(check, device_spec)


# ----------------------------------------------------------------------------------------------
# Part 2: speed against the plain tools.


class Clock:
    def __init__(self, device: torch.device):
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def repeat(self, fn, slice_s: float, max_runs: int):
        """Mean seconds of ``fn()`` over as many runs as fit ``slice_s`` (at least one) and the last result."""
        runs, total, result = 0, 0.0, None
        while True:
            self.sync()
            started = time.perf_counter()
            result = fn()
            self.sync()
            total += time.perf_counter() - started
            runs += 1
            if runs >= max_runs or total / runs * (runs + 1) > slice_s:
                return total / runs, result


@dataclass
class Shape:
    n: int      # matmul weights, head included
    head: int   # V x d
    layers: int
    attention: int  # heads x head_dim

    @classmethod
    def of(cls, model) -> "Shape":
        config = model.config
        n = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(n, model.get_output_embeddings().weight.numel(), config.num_hidden_layers,
                   config.num_attention_heads * head_dim)

    def train(self, tokens: int, length: int) -> float:
        return tokens * (6 * self.n + 12 * self.layers * self.attention * length)

    def forward(self, length: int, head_positions: int) -> float:
        return (2 * (self.n - self.head) * length + 2 * self.head * head_positions
                + 4 * self.layers * self.attention * length * length)

    def decode(self, context: float) -> float:
        return 2 * self.n + 4 * self.layers * self.attention * context


@dataclass
class Row:
    workload: str
    model: str
    ours: float | None = None     # tokens/s
    theirs: float | None = None
    ours_mfu: float | None = None
    theirs_mfu: float | None = None
    note: str = ""


class Budget:
    def __init__(self, seconds: float, measurements: int):
        self.deadline = time.perf_counter() + seconds
        self.left = measurements

    def slice(self) -> float:
        """Seconds for the next timed measurement; warm-ups and model builds come out of the margin."""
        share = max(0.0, self.deadline - time.perf_counter()) / max(self.left, 1)
        self.left -= 1
        return max(0.5, 0.6 * share)


def speed_model(name: str, shape: dict, vocab: int, device: torch.device) -> LlamaForCausalLM:
    from forgetting.models.attention import use_on

    config = LlamaConfig(vocab_size=vocab, max_position_embeddings=8192, rms_norm_eps=1e-5,
                         tie_word_embeddings=True, hidden_act="silu", **shape)
    torch.manual_seed(0)
    with torch.device(device):  # initialised where it runs: seconds, not minutes, for 1.7B
        model = LlamaForCausalLM(config)
    return use_on(model).eval()  # as load_model gives it


def measure_generation(model, tokenizer, shape: Shape, sizes, precision, clock, budget, row: Row):
    from forgetting.scoring.generation import generate

    rng = np.random.default_rng(3)
    lengths = rng.integers(sizes.prompt_length // 2, sizes.prompt_length + 1, sizes.prompts)
    prompts = [words(rng, len(tokenizer), int(n)) for n in lengths]
    batch, new = sizes.gen_batch, sizes.max_new_tokens

    def flops(generated: int) -> float:
        per_prompt = generated / len(prompts)
        return sum(shape.forward(int(p), 1) + max(per_prompt - 1, 0) * shape.decode(p + per_prompt / 2)
                   for p in lengths)

    def ours():
        return generate(model, tokenizer, prompts, new, batch, stop_strings=(), precision=precision)

    generate(model, tokenizer, prompts[:batch], 4, batch, stop_strings=(), precision=precision)  # warm-up
    seconds, (completions, generated) = clock.repeat(ours, budget.slice(), sizes.max_runs)
    row.ours, row.ours_mfu = generated / seconds, flops(generated) / seconds

    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # the project's batches

    @torch.no_grad()
    def plain(selection):
        tokenizer.padding_side = "left"
        count, texts = 0, [""] * len(prompts)
        for start in range(0, len(selection), batch):
            chosen = selection[start:start + batch]
            inputs = tokenizer([prompts[i] for i in chosen], return_tensors="pt", padding=True).to(model.device)
            with policy.autocast(precision, model.device):
                output = model.generate(**inputs, max_new_tokens=new, do_sample=False,
                                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
            tokens = output[:, inputs["input_ids"].shape[1]:]
            count += int((tokens != tokenizer.pad_token_id).sum())
            for row_index, index in enumerate(chosen):
                texts[index] = tokenizer.decode(tokens[row_index][tokens[row_index] != tokenizer.pad_token_id])
        return count, texts

    plain(order[:batch])  # warm-up on the first batch
    seconds, (count, reference) = clock.repeat(lambda: plain(order), budget.slice(), sizes.max_runs)
    row.theirs, row.theirs_mfu = count / seconds, flops(count) / seconds
    same = sum(a == b for a, b in zip(completions, reference))
    row.note = f"{generated} vs {count} new tokens, {same}/{len(prompts)} completions identical"


def measure_scoring(model, tokenizer, shape: Shape, sizes, precision, clock, budget, row: Row):
    from forgetting.scoring.multiple_choice import question_logprobs

    rng = np.random.default_rng(4)
    questions, context_lengths, choice_lengths = [], [], []
    for _ in range(sizes.questions):
        n = int(rng.integers(sizes.context_length // 2, sizes.context_length + 1))
        lengths = [int(k) for k in rng.integers(4, 17, sizes.choices)]
        questions.append((words(rng, len(tokenizer), n), [" " + words(rng, len(tokenizer), k) for k in lengths]))
        context_lengths.append(n)
        choice_lengths.append(lengths)
    pairs = list(zip(context_lengths, choice_lengths))
    request_tokens = sum(n * len(ks) + sum(ks) for n, ks in pairs)
    ours_flops = sum(shape.forward(n + sum(k - 1 for k in ks), sum(ks)) for n, ks in pairs)  # packed, scored head
    theirs_flops = sum(shape.forward(n + k - 1, n + k - 1) for n, ks in pairs for k in ks)  # one row a choice

    question_logprobs(model, tokenizer, questions[:sizes.mc_batch], sizes.mc_batch, precision)  # warm-up
    seconds, (scores, _) = clock.repeat(
        lambda: question_logprobs(model, tokenizer, questions, sizes.mc_batch, precision),
        budget.slice(), sizes.max_runs)
    row.ours, row.ours_mfu = request_tokens / seconds, ours_flops / seconds

    try:
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM
    except Exception as error:  # noqa: BLE001: lm-eval is optional
        budget.slice()
        row.note = f"skipped: lm-eval not installed ({missing_package(error) or first_line(error)})"
        return
    options = dict(pretrained=model, tokenizer=tokenizer, batch_size=sizes.mc_batch * sizes.choices)
    if precision == "bf16-autocast" and "mixed_precision_dtype" in inspect.signature(HFLM.__init__).parameters:
        options["mixed_precision_dtype"] = torch.bfloat16  # its forward's own autocast; else ours below
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm = HFLM(**options)
    requests = [Instance("loglikelihood", {}, (prompt, choice), index)
                for index, (prompt, choices) in enumerate(questions) for choice in choices]

    def plain():
        with policy.autocast(precision, model.device):
            return lm.loglikelihood(requests, disable_tqdm=True)

    with policy.autocast(precision, model.device):
        lm.loglikelihood(requests[:sizes.mc_batch * sizes.choices], disable_tqdm=True)  # warm-up
    seconds, results = clock.repeat(plain, budget.slice(), sizes.max_runs)
    row.theirs, row.theirs_mfu = request_tokens / seconds, theirs_flops / seconds
    ours_flat = np.array([s for choice_scores in scores for s in choice_scores])
    theirs_flat = np.array([r[0] for r in results])
    agree = sum(int(np.argmax(a)) == int(np.argmax(b)) for a, b in
                zip(np.split(ours_flat, len(questions)), np.split(theirs_flat, len(questions))))
    row.note = (f"lm-eval batch {options['batch_size']}; summed log-probs differ by at most "
                f"{np.abs(ours_flat - theirs_flat).max():.3f}, same argmax on {agree}/{len(questions)}")


class StepClock(transformers.TrainerCallback):
    def __init__(self, warmup: int, clock: Clock):
        self.warmup, self.clock, self.started, self.ended = warmup, clock, None, None

    def on_step_end(self, args, state, control, **kwargs):
        self.clock.sync()
        if state.global_step == self.warmup:
            self.started = time.perf_counter()
        self.ended = time.perf_counter()


def measure_training(model, tokenizer, shape: Shape, sizes, precision, clock, budget, row: Row):
    from forgetting.training.corpus import lm_batches
    from forgetting.training.optimizer import adamw_with_warmup, optimizer_step

    generator = torch.Generator().manual_seed(5)
    blocks = torch.randint(len(SPECIALS), len(tokenizer), (sizes.train_batch * 4, sizes.block_size),
                           generator=generator)
    batches = list(lm_batches(blocks, sizes.train_batch))
    tokens = sizes.train_batch * sizes.block_size
    lr, warmup = 5e-5, sizes.warmup_steps

    optimizer, scheduler = adamw_with_warmup(model, lr, warmup + sizes.max_steps)
    for step in range(warmup):
        optimizer_step(model, batches[step % len(batches)], optimizer, scheduler, precision)
    step = warmup

    def one():
        nonlocal step
        optimizer_step(model, batches[step % len(batches)], optimizer, scheduler, precision)
        step += 1

    seconds, _ = clock.repeat(one, budget.slice(), sizes.max_steps)
    steps = step - warmup
    row.ours, row.ours_mfu = tokens / seconds, shape.train(tokens, sizes.block_size) / seconds
    del optimizer, scheduler
    free(model.device)

    budget.slice()  # the Trainer runs as many steps as the loop did
    try:
        from transformers import Trainer, TrainingArguments

        clock_back = StepClock(warmup, clock)
        dataset = [{"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids} for ids in blocks]
        with tempfile.TemporaryDirectory() as output:
            arguments = TrainingArguments(
                output_dir=output, per_device_train_batch_size=sizes.train_batch, max_steps=warmup + steps,
                learning_rate=lr, lr_scheduler_type="linear", warmup_steps=int(0.1 * (warmup + steps)),
                weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch", bf16=precision == "bf16-autocast",
                use_cpu=model.device.type == "cpu", save_strategy="no", report_to=[], logging_strategy="no",
                disable_tqdm=True, dataloader_num_workers=0, seed=0)
            trainer = Trainer(model=model, args=arguments, train_dataset=dataset, callbacks=[clock_back])
            with contextlib.redirect_stdout(io.StringIO()):  # its end-of-training metrics line
                trainer.train()
            del trainer
    except Exception as error:  # noqa: BLE001
        package = missing_package(error)
        if package is None:
            raise
        row.note = f"skipped: Trainer needs {package}"
        return
    finally:
        free(model.device)
    seconds = (clock_back.ended - clock_back.started) / steps
    row.theirs, row.theirs_mfu = tokens / seconds, shape.train(tokens, sizes.block_size) / seconds
    row.note = f"batch {sizes.train_batch} x {sizes.block_size}, {steps} timed steps each after {warmup}"


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


@dataclass
class Sizes:
    vocab: int = 49152
    train_batch: int = 8
    block_size: int = 1024
    warmup_steps: int = 3
    max_steps: int = 60
    questions: int = 128
    context_length: int = 256
    choices: int = 4
    mc_batch: int = 16
    prompts: int = 64
    prompt_length: int = 128
    gen_batch: int = 32
    max_new_tokens: int = 128
    max_runs: int = 10


SMOKE_SIZES = Sizes(vocab=512, train_batch=2, block_size=32, warmup_steps=1, max_steps=2, questions=6,
                    context_length=16, mc_batch=2, prompts=4, prompt_length=12, gen_batch=2, max_new_tokens=6,
                    max_runs=1)


def part_two(args, sizes: Sizes, configs: dict) -> list[Row]:
    device = policy.select(args.device, args.precision).device
    precision = policy.current().precision
    clock = Clock(device)
    tokenizer = word_tokenizer(sizes.vocab)
    budget = Budget(args.budget_s - (time.perf_counter() - STARTED), 6 * len(configs))
    rows = []
    print(f"\n## 2. Speed on {device} ({policy.current().gpu_name}), {precision}, random-init models\n")
    for name, shape_options in configs.items():
        try:
            model = with_end_ids(speed_model(name, shape_options, sizes.vocab, device), tokenizer)
        except Exception as error:  # noqa: BLE001
            print(f"{name}: could not build: {first_line(error)}")
            FAILURES.append(name)
            continue
        shape = Shape.of(model)
        print(f"{name}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
              f"N = {shape.n / 1e6:.1f}M matmul weights", flush=True)
        for workload, measure in (("generation", measure_generation), ("mc scoring", measure_scoring),
                                  ("training", measure_training)):
            row = Row(workload, name)
            started = time.perf_counter()
            try:
                measure(model, tokenizer, shape, sizes, precision, clock, budget, row)
            except Exception as error:  # noqa: BLE001
                row.note = f"error: {first_line(error)}"
                FAILURES.append(f"{workload} {name}")
            print(f"  {workload:<11} {time.perf_counter() - started:6.1f} s  {row.note}", flush=True)
            rows.append(row)
            free(device)
        del model
        free(device)
    return rows


def print_table(rows: list[Row], peak_tflops: float) -> None:
    def rate(value):
        return f"{value:,.0f}" if value else "-"

    def mfu(flops_per_s):
        if not flops_per_s:
            return "-"
        percent = 100 * flops_per_s / (peak_tflops * 1e12)
        return f"{percent:.1f}%" if percent >= 0.1 else f"{percent:.1g}%"

    print(f"\nMFU against {peak_tflops:g} TFLOP/s peak. Plain side: training = transformers.Trainer, "
          "mc scoring = lm-eval HFLM.loglikelihood, generation = model.generate.\n")
    print("| workload | model | project tokens/s | plain tokens/s | project / plain | project MFU | plain MFU |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        ratio = f"{row.ours / row.theirs:.2f}x" if row.ours and row.theirs else "-"
        print(f"| {row.workload} | {row.model} | {rate(row.ours)} | {rate(row.theirs)} | {ratio} | "
              f"{mfu(row.ours_mfu)} | {mfu(row.theirs_mfu)} |")
    notes = [f"- {row.workload}, {row.model}: {row.note}" for row in rows if row.note]
    if notes:
        print("\n" + "\n".join(notes))


STARTED = time.perf_counter()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (a smoke test)")
    parser.add_argument("--precision", default="bf16-autocast", choices=policy.PRECISIONS,
                        help="speed part (the checks run fp32, plus one bf16 forward)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="target wall time of the whole run")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H200: 989)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 2 steps: minutes on a CPU")
    parser.add_argument("--only", choices=("all", "checks", "speed"), default="all")
    parser.add_argument("--models", default=None,
                        help=f"comma-separated subset of {', '.join(SPEED_CONFIGS)} (default: both)")
    args = parser.parse_args()

    try:
        policy.select(args.device, "fp32")
        policy.resolve_precision(args.precision, policy.current().device)
    except UsageError as error:
        print(f"bench_device: {error}", file=sys.stderr)
        return 2
    transformers.logging.set_verbosity_error()
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    try:
        import lm_eval
        lm_eval_version = getattr(lm_eval, "__version__", "installed")
    except Exception:  # noqa: BLE001
        lm_eval_version = "not installed"
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, lm-eval {lm_eval_version}; "
          f"device {args.device} ({policy.current().gpu_name}), fp32 matmul precision "
          f"{torch.get_float32_matmul_precision()}{', smoke sizes' if args.smoke else ''}")

    if args.only in ("all", "checks"):
        part_one(args.device)
        print(f"\nchecks: {'all passed' if not FAILURES else 'FAILED: ' + ', '.join(FAILURES)} "
              f"({time.perf_counter() - STARTED:.0f} s so far)", flush=True)
    if args.only in ("all", "speed"):
        configs = SMOKE_CONFIGS if args.smoke else SPEED_CONFIGS
        if args.models:
            wanted = args.models.split(",")
            configs = {name: shape for name, shape in configs.items() if name.split(" ")[0] in wanted}
        rows = part_two(args, SMOKE_SIZES if args.smoke else Sizes(), configs)
        print_table(rows, args.peak_tflops)
    usage = policy.usage_metrics()
    print(f"\npeak GPU memory {usage['peak_gpu_memory_mb'] / 1024:.1f} GiB, "
          f"peak RSS {usage['peak_rss_mb'] / 1024:.1f} GiB")
    print(f"total {time.perf_counter() - STARTED:.0f} s; "
          f"{'FAILED: ' + ', '.join(FAILURES) if FAILURES else 'no failures'}")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
