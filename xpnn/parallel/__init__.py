"""Data-parallel training on dask.distributed (``train_parallel``) and the cluster it and
``xpnn sweep`` run on (``cluster.connect``)."""
