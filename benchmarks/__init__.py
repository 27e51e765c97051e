"""The side-by-side benchmark of tocsin, its peers and the hand-written floor.

Run it from the root of a source checkout, after ``pip install -e '.[bench]'``:
``python -m benchmarks`` (see ``__main__`` for the options). ``engine`` times contenders
interleaved, ``systems`` drives each dispatcher the same way, ``bench`` holds the cases and
their targets and measures one interpreter, ``pythons`` finds the CPythons of the machine and
runs the suite in each, ``report`` keeps the results and writes the page and the plot.
``bridge`` and ``brokers`` are the bridge's own benchmark (``python -m benchmarks.bridge``).
"""
