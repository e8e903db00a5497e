"""Merge knowledge items that repeat a (post, kind, text) into the oldest one, before generation
0004 makes them unique: the copies' batch links, ratings and gold answers move to it (a rating
the same annotator gave the kept item on the same question wins), then the copies go."""

from django.db import migrations
from django.db.models import Count, Min


def merge_duplicates(apps, schema_editor):
    KnowledgeItem = apps.get_model("generation", "KnowledgeItem")
    BatchItem = apps.get_model("generation", "BatchItem")
    Rating = apps.get_model("annotation", "Rating")
    GoldAnswer = apps.get_model("annotation", "GoldAnswer")
    groups = (
        KnowledgeItem.objects.values("post_id", "kind", "text")
        .annotate(n=Count("id"), keep=Min("id"))
        .filter(n__gt=1)
    )
    for group in groups.iterator():
        copies = list(
            KnowledgeItem.objects.filter(
                post_id=group["post_id"], kind=group["kind"], text=group["text"]
            )
            .exclude(pk=group["keep"])
            .values_list("id", flat=True)
        )
        keep = group["keep"]
        linked = set(BatchItem.objects.filter(item_id=keep).values_list("batch_id", flat=True))
        for link in BatchItem.objects.filter(item_id__in=copies):
            if link.batch_id not in linked:
                BatchItem.objects.create(item_id=keep, batch_id=link.batch_id)
                linked.add(link.batch_id)
        rated = set(Rating.objects.filter(item_id=keep).values_list("question_id", "annotator_id"))
        for rating in Rating.objects.filter(item_id__in=copies).order_by("id"):
            if (rating.question_id, rating.annotator_id) not in rated:
                Rating.objects.filter(pk=rating.pk).update(item_id=keep)
                rated.add((rating.question_id, rating.annotator_id))
        golden = set(
            GoldAnswer.objects.filter(item_id=keep).values_list("campaign_id", "question_id")
        )
        for gold in GoldAnswer.objects.filter(item_id__in=copies).order_by("id"):
            if (gold.campaign_id, gold.question_id) not in golden:
                GoldAnswer.objects.filter(pk=gold.pk).update(item_id=keep)
                golden.add((gold.campaign_id, gold.question_id))
        KnowledgeItem.objects.filter(pk__in=copies).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0004_fewer_indexes_on_hot_tables"),
        ("generation", "0003_items_once_with_provenance"),
    ]

    operations = [migrations.RunPython(merge_duplicates, migrations.RunPython.noop)]
