"""What the Python check scripts share: one line per check, and whether a
call is refused with a given python-pkcs11 exception. A script run as
`python3 tests/python/NAME.py` finds this module beside it."""

import sys

import pkcs11


def check(what, condition):
    """Prints `ok: what`, or `FAIL: what` and exits 1."""
    if not condition:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what}")


def refused(error, action):
    """Whether `action` raises the python-pkcs11 exception `error`."""
    try:
        action()
    except error:
        return True
    except pkcs11.exceptions.PKCS11Error as other:
        print(f"  (raised {type(other).__name__} instead)")
        return False
    return False
