"""Every reward is a complete spec, and a new one is one file plus one registration line."""
import json

import pytest

from forgetting.posttrain.data import MethodData
from forgetting.registry import load
from forgetting.rewards import REWARDS
from forgetting.rewards.domains import DOMAINS, Domain
from forgetting.rewards.spec import Reward


@pytest.mark.parametrize("name", REWARDS.in_registration_order())
def test_every_reward_is_complete(name):
    """A registered reward resolves to a scorer and a reference, some domain verifies with it, and the
    columns it declares suffice: each domain's ground truth earns 1.0
    from rows cut to the prompt and those columns (what GRPO and verl pass)."""
    reward = REWARDS.get(name)
    assert isinstance(reward, Reward)
    assert callable(load(reward.scorer)) and callable(load(reward.ground_truth))
    domains = [domain for domain in DOMAINS.values() if domain.reward == name]
    assert domains, f"no domain verifies with reward {name!r}"
    for domain in domains:
        rows = domain.rows("train", seed=0, limit=2)
        cut = [{key: row[key] for key in ("prompt", *reward.columns)} for row in rows]
        assert reward([domain.reference(row) for row in rows], cut) == [1.0, 1.0], domain.name


def test_every_domain_verifies_with_a_registered_reward():
    assert {domain.reward for domain in DOMAINS.values()} <= set(REWARDS.names())


@pytest.fixture
def contains_answer(monkeypatch):
    REWARDS.register("contains-answer", Reward("plugin_contains_answer:contains_answer", "plugin_contains_answer:reference", ("answer",)))  # noqa: E501
    domain = Domain("trivia-contains", "triviaqa", ("naturalqs",), "contains-answer")
    monkeypatch.setitem(DOMAINS, domain.name, domain)
    yield domain
    REWARDS.unregister("contains-answer")


def test_a_reward_added_in_one_file_and_one_registration_line_verifies_a_domain(contains_answer):
    """Through a domain: its ground truth for gt-sft, the environment collect steps, the rows post-training
    hands GRPO's reward and verl's ``compute_score``."""
    from forgetting.rewards.environment import DomainEnv
    from forgetting.rewards.verl_reward import compute_score

    test_every_reward_is_complete("contains-answer")
    domain = contains_answer
    data = MethodData(domain, domain.rows("train", seed=0, limit=3), None)
    ground_truth = [pair["completion"] for pair in data.ground_truth()]
    assert ground_truth == [f" The answer is {row['answer']}." for row in data.rows]
    assert REWARDS.get(domain.reward)(ground_truth, data.prompts()) == [1.0] * 3
    env = DomainEnv("trivia-contains", "train", seed=0, limit=3)
    env.reset()
    assert env.step(f"well, {env.row['answer'].upper()}!")[1] == 1.0
    env.reset()
    assert env.step("no idea")[1] == 0.0
    truth = json.dumps(data.prompts()[0])
    assert compute_score("trivia-contains", ground_truth[0], truth) == 1.0
    assert compute_score("trivia-contains", " The answer is unknown.", truth) == 0.0
