"""Reads its own memory through /proc.

expect: forbidden
"""
with open("/proc/self/mem", "rb") as memory:
    print(memory.read(16))
