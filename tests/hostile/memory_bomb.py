"""Allocates until something gives.

expect: memory
"""
hog = []
while True:
    hog.append(bytearray(64 * 1024 * 1024))
