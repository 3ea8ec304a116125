"""Walks up the stack (sys._getframe, tracebacks, generators) looking for the harness's secrets.

expect: failed
"""
import sys

found = []
try:
    frame = sys._getframe(1)
    while frame is not None:
        found.append(dict(frame.f_locals))
        frame = frame.f_back
except ValueError:
    pass
try:
    raise RuntimeError
except RuntimeError as error:
    try:
        found.append(error.__traceback__.tb_frame.f_back.f_locals)
    except AttributeError:
        pass
print(found)


def solution():
    return 41
