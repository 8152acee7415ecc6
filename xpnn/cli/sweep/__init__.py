"""``xpnn sweep``: every configuration of a grid times every seed, one ``xpnn train`` run a
task on dask.distributed, each row appended to a results file as its run finishes.

``grid`` (the sweep and its checks), ``tasks`` (the runs on the cluster), ``results`` (the
results file), ``report`` (the summary table and picture), ``command`` (the options and
the driver).
"""

from xpnn.cli.sweep.command import add_arguments, run_sweep

__all__ = ["add_arguments", "run_sweep"]
