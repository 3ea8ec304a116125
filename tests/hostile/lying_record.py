"""Returns an instance of its own class whose special method lies about equality.

expect: failed
tests: assert solution().value == 42
"""


class Anything:
    def __eq__(self, other):
        return True


class Box:
    def __init__(self, value):
        self.value = value


def solution():
    return Box(Anything())
