"""A (post, kind, text) is one item, whichever batches produced it (duplicates were merged by
annotation 0005)."""

import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0003_items_once_with_provenance"),
        ("annotation", "0005_merge_duplicate_items"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="knowledgeitem",
            name="knowledge_item_unique_in_batch",
        ),
        migrations.AddConstraint(
            model_name="knowledgeitem",
            constraint=models.UniqueConstraint(
                models.F("post"),
                models.F("kind"),
                django.db.models.functions.text.MD5("text"),
                name="knowledge_item_unique_text",
            ),
        ),
    ]
