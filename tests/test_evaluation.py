import pytest
import torch
from transformers import AutoTokenizer

from forgetting.scoring.answers import extract_boxed, extract_gsm8k, normalize_math, qa_match
from forgetting.scoring.generation import cut_at_stop, generate, greedy_decode
from forgetting.scoring.generative import format_prompt, is_correct
from forgetting.scoring.multiple_choice import encode_pair, question_logprobs, score_multiple_choice
from forgetting.models.bundled import bundled_model_dir
from forgetting.models.tiny import tiny_llama


@pytest.fixture(scope="module")
def tokenizer():
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir())
    return tokenizer


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_llama(vocab_size=len(tokenizer), seed=1)


def reference_logprob(model, tokenizer, context, continuation):
    """One unpacked forward per choice, the way lm-eval computes it."""
    context_ids, continuation_ids = encode_pair(tokenizer, context, continuation)
    ids = torch.tensor([context_ids + continuation_ids])
    with torch.no_grad():
        log_probs = model(ids).logits[0, :-1].log_softmax(-1)
    targets = ids[0, len(context_ids):]
    return log_probs[len(context_ids) - 1:].gather(-1, targets[:, None]).sum().item()


def test_packed_scores_equal_one_forward_per_choice(model, tokenizer):
    questions = [("Question: What is the capital of France?\nAnswer:", [" Paris", " Berlin", " a big city"]),
                 ("The sky is", [" blue", " green"]),
                 ("2 + 2 = ", ["4", "five", "22"])]
    packed, tokens = question_logprobs(model, tokenizer, questions, batch_size=2)
    assert tokens > 0
    for (context, choices), scores in zip(questions, packed):
        expected = [reference_logprob(model, tokenizer, context, c) for c in choices]
        assert scores == pytest.approx(expected, abs=1e-4)


def test_accuracy_and_length_normalisation(model, tokenizer):
    rows = [{"id": "q", "prompt": "The sky is", "choices": [" blue", " a very long green answer"], "label": 0}]
    [result], _ = score_multiple_choice(model, tokenizer, rows)
    scores = result["logprobs"]
    assert result["pred"] == max(range(2), key=scores.__getitem__)
    normed = [scores[0] / len("blue"), scores[1] / len("a very long green answer")]
    assert result["pred_norm"] == max(range(2), key=normed.__getitem__)
    assert result["correct"] == (result["pred"] == 0)


def test_acc_norm_counts_characters_without_the_target_delimiter():
    """lm-eval divides by len(doc_to_choice): " ab" counts 2, so -2/2 < -5.5/6 and the long choice wins
    (counting the space, -2/3 > -5.5/7, the short one would)."""
    from forgetting.scoring.multiple_choice import normalised_prediction

    assert normalised_prediction([-2.0, -5.5], [" ab", " abcdef"]) == 1
    assert normalised_prediction([-2.0, -5.5], ["ab", "abcdef"]) == 1
    assert normalised_prediction([-3.0, -3.0], [" é", " ab"]) == 1  # characters, not bytes


def test_trailing_space_moves_to_the_continuation(tokenizer):
    assert encode_pair(tokenizer, "Answer: ", "4") == encode_pair(tokenizer, "Answer:", " 4")


@pytest.mark.parametrize("completion, expected", [
    ("so 3 + 4 = 7\n#### 7", "7"), ("The answer is $1,200.", "1200"), ("x = 2.50 then 3", "3"),
    ("no number", None)])
def test_gsm8k_extraction(completion, expected):
    assert extract_gsm8k(completion) == expected


def test_boxed_extraction_handles_nested_braces():
    assert extract_boxed(r"so \boxed{\frac{1}{2}} and \boxed{x^{2}}") == "x^{2}"
    assert normalize_math(r"\dfrac{1}{2}") == normalize_math(r"\frac{1}{2}")
    assert extract_boxed("no box") is None


def test_qa_exact_match_is_normalised():
    assert qa_match("The Eiffel Tower.\nmore", ["eiffel tower"])
    assert not qa_match("Paris, France", ["Paris"])


def test_is_correct_by_task():
    assert is_correct("gsm8k", "... #### 18", {"answer": "18"})[0]
    assert is_correct("math500", r"\boxed{\dfrac12}", {"answers": [r"\frac12"]})[0]
    assert not is_correct("naturalqs", "Berlin", {"answers": ["Paris"]})[0]


def test_generation_stops_at_stop_strings(model, tokenizer):
    completions, generated = generate(model, tokenizer, ["Hello", "A longer prompt here"], max_new_tokens=6,
                                      stop_strings=("\n",))
    assert len(completions) == 2 and generated <= 12
    assert all("\n" not in c for c in completions)
    assert cut_at_stop("abc\n\nQuestion: x", ("\n\nQuestion:",)) == "abc"


def test_dropping_finished_rows_gives_the_tokens_of_hf_generate(model, tokenizer):
    """Rows of different prompt lengths, one stopped early by a stop string: every row's tokens match
    ``model.generate`` run on that row alone, so dropping rows from the cache changes nothing."""
    tokenizer.padding_side = "left"
    prompts = ["Hello", "A much longer prompt with more tokens in it", "Question: two plus two?"]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    expected = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        expected.append(out[0, ids.shape[1]:].tolist())
    stop = tokenizer.decode(expected[1][:3])
    got = greedy_decode(model, tokenizer, inputs["input_ids"], inputs["attention_mask"], 12, (stop,))
    assert got[0] == expected[0] and got[2] == expected[2]
    assert got[1] == expected[1][:len(got[1])] and len(got[1]) < 12


def test_chat_prompt_format(tokenizer):
    assert format_prompt(tokenizer, "Q", "plain") == "Q"
    wrapped = format_prompt(tokenizer, "Q", "auto")
    assert "Q" in wrapped and wrapped != "Q" and wrapped.rstrip().endswith("assistant")


def test_code_scoring_runs_model_programs_in_the_sandbox(monkeypatch, model, tokenizer):
    from forgetting.data import load_task
    from forgetting.rewards import code

    rows = load_task("humaneval", "test", limit=2)
    solutions = {row["id"]: row["canonical_solution"] for row in rows}
    completions = [solutions[rows[0]["id"]], "    return None\n"]
    monkeypatch.setattr("forgetting.scoring.generation.generate",
                        lambda *args, **kwargs: (completions, 10))
    results, _ = code.score_code(model, tokenizer, rows)
    assert [r["correct"] for r in results] == [True, False]
    assert results[1]["status"] == "failed"
