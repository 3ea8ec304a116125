"""Reads every open descriptor, hoping the nonce is still in one.

expect: failed
"""
import os

for descriptor in range(64):
    try:
        os.set_blocking(descriptor, False)
        print(descriptor, os.read(descriptor, 4096))
    except OSError:
        pass


def solution():
    return 41
