"""Builds a code object by hand (crafted bytecode can read arbitrary memory).

expect: forbidden
"""


def solution():
    return 41


solution.__code__ = solution.__code__.replace(co_consts=(None, 42))
