"""Load tests: Locust users for both protocols (locustfile.py) and a runner that starts the stack, drives it and
writes the report (`python -m loadtests.run --help`)."""
