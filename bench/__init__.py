"""`make bench`: this project's handler, the floor and a naive peer, measured side by side on Python 3.13."""
