"""What each stage of a batch is keyed on: its endpoint, sampling parameters and template.

A stage result is stored under (post, stage, template hash, model, parameters hash, server key):
`StagePlan.key()` gives all of it but the post. A key with an OK result is never called again,
so two batches that agree on a stage share its answers (the cache).
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from generation.models import Batch, Endpoint
from generation.pipelines.base import Pipeline, Stage, stage_parameters

# StageResult's unique key, as model field names.
STAGE_RESULT_KEY = ["post", "stage", "template_hash", "model", "params_hash", "endpoint_key"]


@dataclass
class StagePlan:
    stage: Stage
    endpoint: Endpoint
    template_hash: str
    parameters: dict[str, Any]
    params_hash: str
    endpoint_key: str
    variant: str

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def model(self) -> str:
        return self.endpoint.model

    @property
    def batched(self) -> bool:
        """Answered by a local model in chunks on the `gpu` queue, not call by call."""
        return self.endpoint.backend == Endpoint.Backend.TRANSFORMERS

    def key(self) -> dict[str, Any]:
        """The stage result key's fields besides the post, for `StageResult.objects.filter`."""
        return {
            "stage": self.name,
            "template_hash": self.template_hash,
            "model": self.model,
            "params_hash": self.params_hash,
            "endpoint_key": self.endpoint_key,
        }


def params_hash(parameters: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()


def stage_plans(batch: Batch, pipeline: Pipeline) -> list[StagePlan]:
    """Each stage's endpoint, effective sampling parameters and result key, in pipeline order."""
    endpoint_ids = {int(pk) for pk in batch.stage_endpoints.values()}
    endpoints = {e.pk: e for e in Endpoint.objects.filter(pk__in=endpoint_ids)}
    plans = []
    for stage in pipeline.stages:
        endpoint_id = batch.stage_endpoints.get(stage.name)
        endpoint = endpoints[int(endpoint_id)] if endpoint_id else batch.endpoint
        # Backend options (timeout, device...) are not part of the key; the effective sampling
        # parameters are (the stage's defaults, the endpoint's and the batch's, see
        # `stage_parameters`), and so is the template variant through its hash.
        parameters = stage_parameters(
            stage, endpoint_parameters=endpoint.parameters, batch_parameters=batch.parameters
        )
        variant = pipeline.stage_variant(stage, batch.parameters.get("template_variant"))
        plans.append(
            StagePlan(
                stage=stage,
                endpoint=endpoint,
                template_hash=pipeline.template_hash(stage, variant),
                variant=variant,
                parameters=parameters,
                params_hash=params_hash(parameters),
                endpoint_key=endpoint.cache_key,
            )
        )
    return plans
