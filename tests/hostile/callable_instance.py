"""The entry point is an object, not a function, and its result lies about equality.

expect: failed
tests: assert solution(1) == 42
"""


class Anything:
    def __eq__(self, other):
        return True


class Solver:
    def __call__(self, value):
        return Anything()


solution = Solver()
