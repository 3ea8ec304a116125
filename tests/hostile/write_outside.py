"""Writes a file outside its working directory.

expect: forbidden
"""
with open("__OUTSIDE__/pwned.txt", "w") as handle:
    handle.write("pwned")
