"""Classic fork bomb.

expect: forbidden
"""
import os

while True:
    os.fork()
