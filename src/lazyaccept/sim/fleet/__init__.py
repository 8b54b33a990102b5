"""Fleet-scale sweeps: a grid of runs (:mod:`.grid`, :mod:`.dimensions`), each a pure function of
a picklable task (:mod:`.worker`), run in this process, a local pool or on Dask
(:mod:`.executors`), streamed to a JSON-lines file that a sweep can resume (:mod:`.results`,
:mod:`.driver`)."""
