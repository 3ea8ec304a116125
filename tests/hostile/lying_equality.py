"""Returns an object that says it equals anything.

expect: failed
tests: assert solution() == 42
"""


class Anything:
    def __eq__(self, other):
        return True


def solution():
    return Anything()
