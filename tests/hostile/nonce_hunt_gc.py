"""Searches every live object for something that looks like the pass nonce.

expect: forbidden
"""
import gc

for thing in gc.get_objects():
    print(repr(thing)[:80])
