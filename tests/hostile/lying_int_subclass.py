"""Returns an int subclass that says it equals anything, nested in a list.

expect: failed
tests: assert solution() == [42]
"""


class Liar(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


def solution():
    return [Liar(41)]
