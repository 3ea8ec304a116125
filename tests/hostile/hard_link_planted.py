"""Hard-links the planted file into the working directory, then overwrites it.

expect: forbidden
"""
import os

os.link("__PLANTED__", "mine")
with open("mine", "w") as handle:
    handle.write("pwned")
