"""Floods every descriptor it can write to, including the harness's private report channel.

expect: output_limit, failed
"""
import os

junk = b"x" * (1 << 16)
for _ in range(2000):
    for descriptor in range(3, 16):
        try:
            os.write(descriptor, junk)
        except OSError:
            pass


def solution():
    return 41
