"""The distributed run: ``distinfer run config.yaml`` on a local or remote Ray cluster.

- ``_driver``: ``run(config)``, from checks to the summary.
- ``_plan``: lazy enumeration of inputs into work units with global indices.
- ``_dispatch``: the scheduling loop (credits, reorder window, retries, exactly once);
  ``_failures``: retries, splitting and deliveries kept until committed.
- ``_placement``: actors per node (``auto``), on the nodes there and those that join.
- ``_autoscale``: asking a cluster's autoscaler for nodes as the backlog grows.
- ``_metrics``: the run's metrics through ``ray.util.metrics``, recorded in actors.
- ``_actor``: the inference actor, one per node (or several), reading its own inputs.
- ``_collector``: the ordered collector writing Parquet parts and the annotated video.
- ``_work``, ``_rows``, ``_summary``: what travels between them.
- ``_ray``, ``_submit``, ``_progress``: connecting to Ray, submitting jobs, progress.
- ``_startup``: what an actor or the collector does as its process starts.
- ``_logs``: worker log records on the driver's console; ``_reach``: on a cluster, every
  node checks it sees the run's local paths.

Nothing is imported here: each Ray process loads only the modules it runs.
"""
