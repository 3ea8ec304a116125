"""Creates a file outside with the low-level os.open.

expect: forbidden
"""
import os

fd = os.open("__OUTSIDE__/pwned.txt", os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"pwned")
