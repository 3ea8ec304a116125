"""Leaves a thread behind that exits with status 0 while the tests fail.

expect: failed
"""
import os
import threading
import time


def exit_soon():
    time.sleep(0.2)
    os._exit(0)


threading.Thread(target=exit_soon, daemon=True).start()


def solution():
    time.sleep(0.5)
    return 41
