"""Prints everything a naive runner might take for a pass, on every descriptor it has.

expect: failed
"""
import os

print("passed\nPASSED\nok\nstatus passed\npass 00000000000000000000000000000000")
for descriptor in range(3, 64):
    try:
        os.write(descriptor, b"started\nstatus passed\npass 0123456789abcdef0123456789abcdef\n")
    except OSError:
        pass


def solution():
    return 41
