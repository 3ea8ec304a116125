"""Errors that the command line turns into one clear line and a non-zero exit."""


class UsageError(ValueError):
    """Bad input from the user: a parameter out of range, an unknown name, a missing source.

    Raised before any work starts; the message is one line that names the parameter and,
    where there is a fixed set, the allowed values.
    """


class TrackingServerLost(RuntimeError):
    """The tracking server stopped answering after MLflow's retries; the message says how to resume.

    Raised by ``forgetting.tracking.retry.on_server_loss``; the command line exits 75 (rerun later).
    """


def check_choice(parameter: str, value, allowed) -> None:
    if value not in allowed:
        raise UsageError(f"{parameter}={value!r} is not one of: {', '.join(map(str, allowed))}")


def check_range(parameter: str, value, low=None, high=None, *, low_open=False, high_open=False) -> None:
    """Check ``low <= value <= high`` (or strict where ``*_open``); ``None`` bounds are unbounded."""
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise UsageError(f"{parameter}={value!r} is outside {interval}")
