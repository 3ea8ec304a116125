"""Plants a symlink to the outside directory, then writes through it.

expect: forbidden
"""
import os

os.symlink("__OUTSIDE__", "escape")
with open("escape/pwned.txt", "w") as handle:
    handle.write("pwned")
