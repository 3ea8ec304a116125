"""Looks for the parent's secrets: its own environment, then the parent's via /proc.

expect: forbidden
"""
import os

print(dict(os.environ))
with open("/proc/__PARENT_PID__/environ", "rb") as handle:
    print(handle.read())
