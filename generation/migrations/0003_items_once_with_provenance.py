"""Items once per (post, kind, text), linked to every batch that produced or reused them; the
server that answered in every stage result's key; items name the description their run read.

Existing results get their endpoint's key (see `Endpoint.cache_key`); existing items are linked to
the batch that made them. Duplicate items are merged by annotation 0005, before generation 0004
makes them unique.
"""

import hashlib
import json

import django.db.models.deletion
from django.db import migrations, models


def endpoint_cache_key(endpoint) -> str:
    # As `Endpoint.cache_key` at the time of this migration (historical models have no properties).
    if endpoint.parameters.get("share_cache"):
        return "shared"
    identity = {
        "backend": endpoint.backend,
        "base_url": endpoint.base_url.rstrip("/"),
        "model_path": endpoint.model_path,
        "model": endpoint.model,
        "adapter": endpoint.parameters.get("adapter") or "",
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def keys_and_links(apps, schema_editor):
    Endpoint = apps.get_model("generation", "Endpoint")
    StageResult = apps.get_model("generation", "StageResult")
    KnowledgeItem = apps.get_model("generation", "KnowledgeItem")
    BatchItem = apps.get_model("generation", "BatchItem")
    for endpoint in Endpoint.objects.all():
        StageResult.objects.filter(endpoint=endpoint).update(
            endpoint_key=endpoint_cache_key(endpoint)
        )
    rows = KnowledgeItem.objects.values_list("id", "batch_id").order_by("id")
    links = []
    for item_id, batch_id in rows.iterator(chunk_size=5000):
        links.append(BatchItem(item_id=item_id, batch_id=batch_id))
        if len(links) >= 5000:
            BatchItem.objects.bulk_create(links)
            links = []
    BatchItem.objects.bulk_create(links)


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0002_batch_progress_and_lease"),
    ]

    operations = [
        migrations.CreateModel(
            name="BatchItem",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "batch",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="item_links",
                        to="generation.batch",
                    ),
                ),
                (
                    "item",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="batch_links",
                        to="generation.knowledgeitem",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["batch", "item"], name="generation__batch_i_fc49f5_idx")
                ],
                "constraints": [
                    models.UniqueConstraint(fields=("item", "batch"), name="batch_item_unique")
                ],
            },
        ),
        migrations.AddField(
            model_name="knowledgeitem",
            name="description_result",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="generation.stageresult",
            ),
        ),
        migrations.AddField(
            model_name="stageresult",
            name="endpoint_key",
            field=models.CharField(default="imported", max_length=64),
        ),
        migrations.AlterField(
            model_name="stageresult",
            name="status",
            field=models.CharField(
                choices=[("ok", "Ok"), ("partial", "Partial"), ("failed", "Failed")],
                max_length=10,
            ),
        ),
        migrations.RunPython(keys_and_links, migrations.RunPython.noop),
        migrations.RemoveConstraint(
            model_name="stageresult",
            name="stage_result_key_unique",
        ),
        migrations.AddConstraint(
            model_name="stageresult",
            constraint=models.UniqueConstraint(
                fields=("post", "stage", "template_hash", "model", "params_hash", "endpoint_key"),
                name="stage_result_key_unique",
            ),
        ),
    ]
