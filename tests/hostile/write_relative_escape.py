"""Climbs out of the working directory with a relative path.

expect: forbidden
"""
import os

os.makedirs("a/b", exist_ok=True)
os.chdir("a/b")
with open("../../" + "../" * 30 + "__OUTSIDE__/pwned.txt", "w") as handle:
    handle.write("pwned")
