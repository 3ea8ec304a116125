"""Intervals and tests of significance against reference values."""
import math

import pytest

from forgetting.scoring.intervals import mcnemar_exact, mean, paired_change, rate, within_noise


def test_wilson_interval_matches_the_textbook_values():
    # Wilson 95% for 8/10: (0.4902, 0.9433) (Newcombe 1998, table I style values; also statsmodels)
    metrics = rate("acc", 8, 10)
    assert metrics["acc"] == 0.8
    assert metrics["acc_ci_low"] == pytest.approx(0.4902, abs=1e-4)
    assert metrics["acc_ci_high"] == pytest.approx(0.9433, abs=1e-4)
    assert metrics["acc_stderr"] == pytest.approx(math.sqrt(0.8 * 0.2 / 9))  # lm-eval's mean_stderr
    zero = rate("acc", 0, 20)
    assert zero["acc_ci_low"] == 0.0 and 0.1 < zero["acc_ci_high"] < 0.2


def test_mcnemar_exact_is_the_binomial_test_on_discordant_pairs():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(2, 0) == pytest.approx(0.5)          # 2 * (1/2)^2
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)       # 2 * (1/2)^6
    assert mcnemar_exact(3, 5) == mcnemar_exact(5, 3) == pytest.approx(2 * (1 + 8 + 28 + 56) / 256)


def test_a_paired_change_of_two_forgotten_in_fifty_is_within_noise():
    """The README's kind of finding ("2 forgotten, 0 learned" in a few dozen rows) is not evidence."""
    change = paired_change("delta", forgotten=2, learned=0, n=50)
    assert change["delta"] == pytest.approx(-0.04)
    assert within_noise(change, "delta") and change["delta_mcnemar_p"] == pytest.approx(0.5)
    clear = paired_change("delta", forgotten=20, learned=1, n=50)
    assert not within_noise(clear, "delta") and clear["delta_mcnemar_p"] < 0.001


def test_mean_interval():
    metrics = mean("loss", [1.0, 2.0, 3.0])
    assert metrics["loss"] == 2.0 and metrics["loss_stderr"] == pytest.approx(1 / math.sqrt(3))
    assert mean("loss", []) == {} and rate("acc", 0, 0) == {}
