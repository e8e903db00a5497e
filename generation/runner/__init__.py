"""The batch runner: runs a batch's model calls and stores what they answer (docs/runner.md).

- `keys`: what each stage is keyed on (StagePlan, stage_plans, params_hash), the cache's key;
- `outcomes`: one call's outcome, cleaned for storage, merged with an earlier partial answer;
- `writer`: results and their items, written in one transaction per bulk (COPY on PostgreSQL);
- `executor`: the loop thread's rolling window of calls, with retries and rate limits;
- `lease`: one runner per batch (claim, heartbeat's clock) and riding out a lost connection;
- `run`: the caller's thread (`batch_execute`): prepare, write, count, pause, cancel, finish;
- `gpu`: GPU stages in chunks on the `gpu` queue, and the GPU worker's side of a chunk.

Nothing here imports `generation.tasks`: the Celery task passes in how a GPU chunk is sent.
"""
