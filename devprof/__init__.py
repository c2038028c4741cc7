"""devprof: measure deep-learning layers on Android phones and turn timings into predictors.

Importing this package is cheap on purpose (no runtimes, no adb): `predictors` and search code
import `devprof.records` without pulling in the measuring machinery.
"""
__version__ = "0.2.0"
