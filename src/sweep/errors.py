class SweepConfigError(ValueError):
    """Bad user input, caught before any model is built. Its message is one line naming the bad value
    and the valid choices."""
