"""The project's error type for bad input, and the one way an exception becomes a one-line message."""


class SweepConfigError(ValueError):
    """Bad user input, caught before any model is built. Its message is one line naming the bad value
    and the valid choices."""


class NotApplicable(Exception):
    """The job's method cannot produce its grid point: it does not apply to the model (BN-scale on a
    model without BatchNorm) or cannot reach the cost asked for. The run ends FAILED with the reason,
    tagged `not_applicable`, and the sweep does not count it as a failure."""


def first_line(e: BaseException | str) -> str:
    """The first line of an exception's message (its type name if it has none), or of a text."""
    text = e if isinstance(e, str) else str(e)
    return (text.strip().splitlines() or [text if isinstance(e, str) else type(e).__name__])[0]


def one_line(e: BaseException) -> str:
    """`Type: first line`, as logged in a FAILED run's error tag and the sweep's summary."""
    return f"{type(e).__name__}: {first_line(e)}"
