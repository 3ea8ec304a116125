"""Turns every uncaught exception, and interpreter exit, into status 0.

expect: failed
"""
import atexit
import os
import sys
import threading

sys.excepthook = lambda *args: os._exit(0)
threading.excepthook = lambda *args: os._exit(0)
atexit.register(os._exit, 0)


def solution():
    return 41
