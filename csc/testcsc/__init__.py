"""The Test component: a small CSC that exercises the whole framework."""

from obsq.csc.testcsc.csc import TestCsc

__all__ = ["TestCsc"]
